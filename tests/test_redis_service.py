"""RedisService: the original helpers; all subscriptions share one connection."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import redis

from csgoflip_jobs import RedisService
from tests.support.polling import wait_until
from tests.support.redis_servers import start_redis


@pytest.fixture
def service(redis_client: redis.Redis, redis_url: str) -> Iterator[RedisService]:
    svc = RedisService(redis.Redis.from_url(redis_url, decode_responses=True))
    yield svc
    svc.close()


def pubsub_clients(client: redis.Redis) -> int:
    return sum(1 for c in client.client_list() if int(c.get("sub", 0)) > 0)


def test_the_original_operations(service: RedisService) -> None:
    service.set("user:1:profile", {"name": "s1mple", "balance": 1200}, ttl=60)
    assert service.get("user:1:profile") == {"name": "s1mple", "balance": 1200}
    assert 55 <= service.ttl("user:1:profile") <= 60
    service.set("forever", None)
    assert service.exists("forever") and service.ttl("forever") == -1
    assert service.get("missing") is None
    assert service.delete("forever", "missing") == 1
    assert service.lpush("feed", "a", "b", "c") == 3
    service.ltrim("feed", 0, 1)
    assert service.lrange("feed", 0, -1) == ["c", "b"]
    assert service.sadd("online", "1", "2") == 2 and service.srem("online", "1") == 1
    assert service.smembers("online") == {"2"}
    assert service.hset("h", "f", "v") == 1 and service.hget("h", "f") == "v"
    assert service.hgetall("h") == {"f": "v"} and service.hget("h", "nope") is None
    assert service.incr("n") == 1 and service.incr("n", 5) == 6 and service.decr("n") == 5
    assert service.expire("n", 30) and 25 <= service.ttl("n") <= 30
    assert service.ttl("missing") == -2


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.get(""),
        lambda s: s.set("k", 1, ttl=-5),
        lambda s: s.set("k", 1, ttl=0),
        lambda s: s.expire("k", -1),
        lambda s: s.hset("h", "", "v"),
        lambda s: s.subscribe("", lambda c, m: None),
        lambda s: s.subscribe("chan", "not callable"),
    ],
)
def test_bad_arguments_raise_value_error(service: RedisService, call: object) -> None:
    with pytest.raises(ValueError):
        call(service)  # type: ignore[operator]


def test_100_subscriptions_share_one_connection(
    service: RedisService, redis_client: redis.Redis
) -> None:
    before = pubsub_clients(redis_client)
    received: list[tuple[str, str]] = []
    lock = threading.Lock()

    def handler(channel: str, message: str) -> None:
        with lock:
            received.append((channel, message))

    for n in range(100):
        service.subscribe(f"user:{n}:events", handler)
    wait_until(lambda: redis_client.pubsub_numsub("user:99:events")[0][1] == 1, 5)
    assert pubsub_clients(redis_client) == before + 1
    for n in range(100):
        service.publish(f"user:{n}:events", {"n": n})
    wait_until(lambda: len(received) == 100, 5)
    assert {channel for channel, _ in received} == {f"user:{n}:events" for n in range(100)}


def test_unsubscribe_stops_delivery(service: RedisService, redis_client: redis.Redis) -> None:
    got: list[str] = []
    kept: list[str] = []
    first = service.subscribe("room", lambda _c, m: got.append(m))
    service.subscribe("room", lambda _c, m: kept.append(m))
    wait_until(lambda: redis_client.pubsub_numsub("room")[0][1] == 1, 5)
    service.publish("room", "one")
    wait_until(lambda: got == ["one"] and kept == ["one"], 5)
    first.unsubscribe()
    service.publish("room", "two")
    wait_until(lambda: kept == ["one", "two"], 5)
    assert got == ["one"]


def test_a_message_that_is_not_text_is_skipped_not_the_end_of_delivery(
    service: RedisService, redis_client: redis.Redis
) -> None:
    """A non-UTF-8 message ended the reader thread: every later message was lost."""
    got: list[str] = []
    service.subscribe("room", lambda _c, m: got.append(m))
    wait_until(lambda: redis_client.pubsub_numsub("room")[0][1] == 1, 5)
    redis_client.publish("room", b"\xff\xfe")
    service.publish("room", "after")
    wait_until(lambda: got == ["after"], 5)


def test_subscriptions_come_back_after_a_redis_restart() -> None:
    server = start_redis()
    port = server.port
    service = RedisService(redis.Redis(port=port, decode_responses=True))
    got: list[str] = []
    try:
        service.subscribe("live", lambda _c, m: got.append(m))
        wait_until(lambda: service.client.pubsub_numsub("live")[0][1] == 1, 5)
        server.stop()
        server = start_redis(port=port)
        publisher = redis.Redis(port=port)
        wait_until(lambda: publisher.pubsub_numsub("live")[0][1] == 1, 20, interval=0.2)
        publisher.publish("live", "after restart")
        wait_until(lambda: got == ["after restart"], 5)
    finally:
        service.close()
        server.stop()

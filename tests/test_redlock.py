"""RedlockService over three independent redis-server masters."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from csgoflip_jobs import LockError, LockLostError, LockSignal, RedlockService
from csgoflip_jobs.helpers.clients import lock_master_client
from csgoflip_jobs.helpers.redlock import FENCE_TTL_S, Lock
from csgoflip_jobs.keys import fence_key, lock_key
from tests.support.redis_servers import RedisServer, start_redis


@pytest.fixture
def masters() -> Iterator[list[RedisServer]]:
    servers = [start_redis() for _ in range(3)]
    yield servers
    for server in servers:
        server.stop()


def service_for(servers: list[RedisServer], **options: int) -> RedlockService:
    return RedlockService([lock_master_client(s.url) for s in servers], **options)


def test_locks_on_all_masters_and_releases(masters: list[RedisServer]) -> None:
    redlock = service_for(masters)
    lock = redlock.acquire("user:1:case-open", 2000)
    assert 1900 < lock.remaining_ms <= 2000
    for server in masters:
        assert (
            redis.Redis(port=server.port).get(lock_key("user:1:case-open")) == lock.value.encode()
        )
    assert redlock.release(lock) == 3
    assert all(not redis.Redis(port=s.port).exists(lock_key("user:1:case-open")) for s in masters)


def test_a_held_lock_cannot_be_taken(masters: list[RedisServer]) -> None:
    redlock = service_for(masters)
    redlock.acquire("user:2:balance", 5000)
    impatient = service_for(masters, retry_count=2)
    with pytest.raises(LockError, match="could not lock user:2:balance"):
        impatient.acquire("user:2:balance", 5000)


def test_one_master_down_still_locks(masters: list[RedisServer]) -> None:
    masters[0].stop()
    lock = service_for(masters).acquire("user:3:balance", 2000)
    assert lock.attempts == 1


def test_two_masters_down_fails_clearly_after_its_retries(masters: list[RedisServer]) -> None:
    masters[0].stop()
    masters[1].stop()
    started = time.monotonic()
    with pytest.raises(LockError) as caught:
        service_for(masters).acquire("user:4:balance", 2000)
    elapsed = time.monotonic() - started
    assert "2 of 3 masters needed, 11 attempts failed (last: 1 of 3 masters locked)" in str(
        caught.value
    )
    assert 1.0 < elapsed < 10  # ten waits of 200 ms +/- 200 ms
    # The one reachable master was released after each failed attempt.
    assert not redis.Redis(port=masters[2].port).exists(lock_key("user:4:balance"))


def test_using_keeps_the_lock_for_three_times_its_duration(masters: list[RedisServer]) -> None:
    redlock = service_for(masters)
    rival = service_for(masters, retry_count=0)
    rival_results: list[str] = []

    def routine(signal: LockSignal) -> str:
        for _ in range(9):  # 9 x 100 ms = 3 x the 300 ms duration
            time.sleep(0.1)
            signal.check()
            try:
                rival.release(rival.acquire("user:5:withdraw", 300))
                rival_results.append("got it")
            except LockError:
                rival_results.append("refused")
        return "done"

    assert redlock.using("user:5:withdraw", 300, routine) == "done"
    assert rival_results == ["refused"] * 9
    rival.release(rival.acquire("user:5:withdraw", 300))  # free once the routine ended


def test_the_routine_is_told_when_the_lock_is_lost(masters: list[RedisServer]) -> None:
    redlock = service_for(masters)
    seen: list[bool] = []

    def routine(signal: LockSignal) -> None:
        for server in masters:  # someone else's value everywhere: extension must fail
            redis.Redis(port=server.port).set(lock_key("user:6:withdraw"), "stolen", px=10_000)
        deadline = time.monotonic() + 3
        while not signal.aborted and time.monotonic() < deadline:
            time.sleep(0.02)
        seen.append(signal.aborted)
        signal.check()

    with pytest.raises(LockLostError, match="could not extend"):
        redlock.using("user:6:withdraw", 300, routine)
    assert seen == [True]
    # Releasing did not delete the new owner's keys.
    assert redis.Redis(port=masters[0].port).get(lock_key("user:6:withdraw")) == b"stolen"


def test_only_the_owner_can_extend_or_release(masters: list[RedisServer]) -> None:
    redlock = service_for(masters)
    lock = redlock.acquire("user:7:balance", 5000)
    impostor = Lock(lock.resources, "not-the-value", lock.expires_at, {}, 1)
    assert redlock.release(impostor) == 0
    with pytest.raises(LockError, match="could not extend"):
        redlock.extend(impostor, 5000)
    extended = redlock.extend(lock, 8000)
    assert extended.remaining_ms > 7000
    assert redis.Redis(port=masters[0].port).pttl(lock_key("user:7:balance")) > 7000


def test_fencing_tokens_strictly_increase_per_resource(masters: list[RedisServer]) -> None:
    redlock = service_for(masters)
    tokens: list[int] = []
    for round_ in range(30):
        if round_ == 10:
            masters[0].stop()  # a quorum of the other two
        if round_ == 20:
            masters[0] = start_redis(port=masters[0].port)  # back, with no data at all
            masters[1].stop()
        lock = redlock.acquire("user:8:balance", 1000)
        tokens.append(lock.fencing_token)
        redlock.release(lock)
    assert all(later > earlier for earlier, later in itertools.pairwise(tokens))
    other = redlock.acquire("user:9:balance", 1000)
    assert set(other.fencing_tokens) == {"user:9:balance"}


def test_tokens_keep_growing_after_a_single_master_loses_its_data(
    redis_client: redis.Redis,
) -> None:
    redlock = RedlockService([redis_client])
    first = redlock.acquire("user:10:balance", 1000)
    redlock.release(first)
    redis_client.flushdb()
    second = redlock.acquire("user:10:balance", 1000)
    assert second.fencing_token > first.fencing_token


def test_locks_on_several_resources_at_once(redis_client: redis.Redis) -> None:
    redlock = RedlockService([redis_client], retry_count=0)
    lock = redlock.acquire(["user:1:balance", "user:2:balance"], 2000)
    assert set(lock.fencing_tokens) == {"user:1:balance", "user:2:balance"}
    with pytest.raises(LockError):
        redlock.acquire(["user:2:balance", "user:3:balance"], 2000)
    assert not redis_client.exists(lock_key("user:3:balance"))  # all or nothing
    redlock.release(lock)


def test_concurrent_acquirers_never_overlap(redis_client: redis.Redis, redis_url: str) -> None:
    inside = [0]
    overlaps: list[int] = []
    tokens: list[int] = []
    guard = threading.Lock()

    def worker() -> None:
        redlock = RedlockService(
            [redis.Redis.from_url(redis_url)],
            retry_delay_ms=20,
            retry_jitter_ms=10,
            retry_count=200,
        )
        for _ in range(5):
            with redlock.lock("user:11:balance", 2000) as signal:
                with guard:
                    inside[0] += 1
                    overlaps.append(inside[0])
                    tokens.append(signal.fencing_token)
                time.sleep(0.005)
                with guard:
                    inside[0] -= 1

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert max(overlaps) == 1 and len(tokens) == 20
    assert tokens == sorted(tokens) and len(set(tokens)) == 20


@pytest.mark.parametrize(
    "call",
    [
        lambda r: r.acquire("", 1000),
        lambda r: r.acquire([], 1000),
        lambda r: r.acquire("x", 0),
        lambda r: r.acquire("x", -5),
        lambda r: r.using("x", 1000, "not callable"),
    ],
)
def test_bad_arguments_raise_value_error(redis_client: redis.Redis, call: object) -> None:
    with pytest.raises(ValueError):
        call(RedlockService([redis_client]))  # type: ignore[operator]


def test_a_lock_named_like_a_queue_never_touches_the_queue(redis_client: redis.Redis) -> None:
    """lock("email") wrote a string where the email queue's list lives: every later
    enqueue failed with a raw WRONGTYPE."""
    from csgoflip_jobs import JobQueue

    queue = JobQueue("email")
    queue.add("test-record", {"n": 1})
    with RedlockService([redis_client]).lock("email", 5000):
        assert redis_client.type("email") == b"list"
        queue.add("test-record", {"n": 2})
    assert queue.get_job_counts()["waiting"] == 2


def test_fencing_counters_expire_once_unused(redis_client: redis.Redis) -> None:
    """One counter per user and withdrawal stayed for ever in a noeviction Redis; a
    counter that expires restarts past every token it gave."""
    redlock = RedlockService([redis_client])
    first = redlock.acquire("withdrawal:1:process", 1000)
    redlock.release(first)
    ttl_s = redis_client.ttl(fence_key("withdrawal:1:process"))
    assert FENCE_TTL_S - 5 < ttl_s <= FENCE_TTL_S
    redis_client.delete(fence_key("withdrawal:1:process"))  # as its expiry would
    second = redlock.acquire("withdrawal:1:process", 1000)
    assert second.fencing_token > first.fencing_token

"""The asyncio API (csgoflip_jobs.aio): the same messages and scripts as the sync API,
the same bounds, and an event loop that keeps running while Redis stalls."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
import redis
from celery import Celery

from csgoflip_jobs import aio, keys
from csgoflip_jobs.celery_app import app as platform_app
from csgoflip_jobs.celery_app import create_app
from csgoflip_jobs.engine.enqueue import JOB_HEADER, capturing
from csgoflip_jobs.engine.job_queue import JobQueue
from csgoflip_jobs.engine.options import parse_options
from csgoflip_jobs.helpers.clients import make_async_client
from csgoflip_jobs.helpers.errors import BrokerTimeoutError, BrokerUnavailableError, LockError
from csgoflip_jobs.settings import Settings
from tests.support.redis_servers import RedisServer, free_port, start_redis
from tests.support.workers import WorkerProcess

T = TypeVar("T")

FAST = Settings(redis_connect_timeout_s=0.5, redis_command_timeout_s=0.5, redis_max_retries=2)
"""Connection bounds for the stalled-Redis tests."""


def run(main: Callable[[], Awaitable[T]]) -> T:
    """Run ``main()`` in a new event loop, closing the loop's clients afterwards."""

    async def with_cleanup() -> T:
        try:
            return await main()
        finally:
            await aio.close()

    return asyncio.run(with_cleanup())


def stored_message(client: redis.Redis, job_id: str) -> dict[str, Any]:
    """A waiting job's message, minus what differs for every message (ids, tags)."""
    raw = client.hget(keys.job_key("email", job_id), "msg")
    assert raw is not None
    message: dict[str, Any] = json.loads(raw)
    message["headers"] = {k: v for k, v in message["headers"].items() if k not in ("id", "root_id")}
    message["properties"] = {
        k: v
        for k, v in message["properties"].items()
        if k not in ("correlation_id", "delivery_tag")
    }
    return message


def test_async_add_builds_the_messages_sync_add_and_celery_build(
    redis_client: redis.Redis,
) -> None:
    data = {"to": "ü@example.com", "n": [1, {"deep": None}]}
    options = {"priority": 3, "attempts": 5, "backoff": 250}
    sync_id = JobQueue("email").add("test-record", data, **options)  # type: ignore[arg-type]

    async def main() -> tuple[str, list[str]]:
        queue = aio.JobQueue("email")
        one = await queue.add("test-record", data, **options)  # type: ignore[arg-type]
        bulk = await queue.add_bulk([{"name": "test-record", "data": data, "opts": options}])
        return one, bulk

    async_id, bulk_ids = run(main)
    reference = stored_message(redis_client, sync_id)
    for job_id in (async_id, *bulk_ids):
        assert stored_message(redis_client, job_id) == reference
    # The message Celery's own send_task builds for the same job.
    header = parse_options(**options).header()
    with capturing() as captured, platform_app.producer_or_acquire() as producer:
        platform_app.send_task(
            "test-record", kwargs=data, queue="email", priority=3, producer=producer,
            headers={JOB_HEADER: header},
        )  # fmt: skip
    assert captured.task is not None
    celery_built = json.loads(json.dumps(captured.task[1]))
    for section, drop in (("headers", ("id", "root_id")), ("properties", ("correlation_id",
                          "delivery_tag"))):  # fmt: skip
        celery_built[section] = {k: v for k, v in celery_built[section].items() if k not in drop}
    assert celery_built == reference


def test_the_whole_async_api_against_a_real_worker(
    workers: Callable[..., WorkerProcess], redis_client: redis.Redis
) -> None:
    workers(queues="notification")

    async def main() -> None:
        queue = aio.JobQueue("notification")
        job_id = await queue.add("test-record", {"n": 1})
        assert await queue.wait_until_finished(job_id, 10) == {"n": 1}
        delayed = await queue.add("test-record", {"n": 2}, delay=60_000)
        assert [job.id for job in await queue.get_delayed()] == [delayed]
        assert await queue.promote(delayed)
        assert await queue.wait_until_finished(delayed, 10) == {"n": 2}
        counts = await queue.get_job_counts()
        assert counts["completed"] == 2 and counts["waiting"] == 0
        assert (await queue.get_metrics("completed"))["total"] == 2
        seen = [e["event"] async for e in _first(aio.QueueEvents("notification").listen("0"), 4)]
        assert seen == ["added", "waiting", "active", "completed"]
        assert await queue.pause() and await queue.is_paused() and await queue.resume()

    run(main)


async def _first(events: Any, count: int) -> Any:
    async for event in events:
        yield event
        count -= 1
        if count == 0:
            return


def test_async_helpers_sessions_cache_rate_limits_and_monitor(redis_client: redis.Redis) -> None:
    async def main() -> None:
        sessions = aio.SessionService()
        session = await sessions.create(42, {"ip": "203.0.113.7"})
        assert (await sessions.validate(session.id)).user_id == 42  # type: ignore[union-attr]
        assert await sessions.get_user_sessions(42) == {session.id}
        assert await sessions.invalidate(session.id) and await sessions.validate(session.id) is None
        limiter = aio.RateLimitService()
        results = [await limiter.check("login:ip", 2, 60) for _ in range(3)]
        assert [r.limited for r in results] == [False, False, True]
        assert results[-1].reset_after_s > 0
        monitor = aio.RedisMonitor()
        assert (await monitor.get_stats()).connected_clients >= 1
        service = aio.RedisService()
        await service.set("greeting", {"hello": "world"}, ttl=60)
        assert await service.get("greeting") == {"hello": "world"}

    run(main)


def test_async_cached_runs_the_factory_once_for_many_coroutines(redis_client: redis.Redis) -> None:
    calls = 0

    async def compute() -> list[str]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.2)  # a slow query, while the others wait
        return ["case-1", "case-2"]

    async def main() -> list[Any]:
        cache = aio.CacheService()
        return await asyncio.gather(*(cache.cached("cases", 60, compute) for _ in range(20)))

    results = run(main)
    assert calls == 1 and all(r == ["case-1", "case-2"] for r in results)
    with pytest.raises(ValueError, match="coroutine function"):
        from csgoflip_jobs import CacheService

        CacheService().cached("cases2", 60, compute)


def test_async_lock_is_extended_while_held_and_fenced(redis_client: redis.Redis) -> None:
    async def main() -> tuple[int, int, bool]:
        redlock = aio.RedlockService()
        async with redlock.lock("user:9:balance", 300) as first:
            await asyncio.sleep(0.9)  # three times the lock's life: extended meanwhile
            first.check()
            with pytest.raises(LockError):
                await aio.RedlockService(retry_count=0).acquire("user:9:balance", 300)
        async with redlock.lock("user:9:balance", 300) as second:
            pass
        return (
            first.fencing_token,
            second.fencing_token,
            bool(redis_client.exists("user:9:balance")),
        )

    first, second, still_locked = run(main)
    assert second > first and not still_locked


def test_async_subscribe_delivers_on_one_connection(redis_client: redis.Redis) -> None:
    async def main() -> list[tuple[str, str]]:
        service = aio.RedisService()
        got: list[tuple[str, str]] = []
        arrived = asyncio.Event()

        async def handler(channel: str, message: str) -> None:
            got.append((channel, message))
            arrived.set()

        await service.subscribe("notifications:user:5", handler)
        await asyncio.sleep(0.1)
        await service.publish("notifications:user:5", {"type": "case-opened"})
        await asyncio.wait_for(arrived.wait(), 5)
        await service.close()
        return got

    assert run(main) == [("notifications:user:5", '{"type": "case-opened"}')]


def test_async_subscribe_skips_a_message_that_is_not_text(redis_client: redis.Redis) -> None:
    """A non-UTF-8 message ended the reader task: every later message was lost."""

    async def main() -> list[str]:
        service = aio.RedisService()
        got: list[str] = []
        arrived = asyncio.Event()

        def handler(_channel: str, message: str) -> None:
            got.append(message)
            arrived.set()

        await service.subscribe("room", handler)
        await asyncio.sleep(0.1)
        redis_client.publish("room", b"\xff\xfe")
        await service.publish("room", "after")
        await asyncio.wait_for(arrived.wait(), 5)
        await service.close()
        return got

    assert run(main) == ["after"]


@pytest.fixture
def private_redis() -> Iterator[tuple[RedisServer, Celery]]:
    """A private redis-server and a platform app whose broker it is."""
    server = start_redis()
    settings = {k: v for k, v in vars(__import__("celeryconfig")).items() if k.islower()}
    config = type("Config", (), {**settings, "broker_url": server.url, "result_backend": None})
    app = create_app(config, set_as_current=False)
    app.tasks.update(platform_app.tasks)
    try:
        yield server, app
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
        server.stop()


def test_a_stalled_redis_fails_the_call_within_the_bounds_and_the_loop_keeps_running(
    private_redis: tuple[RedisServer, Celery],
) -> None:
    """SIGSTOP: the call gives up within the bounds (tries x timeouts + backoff) with
    BrokerTimeoutError, while a ticker coroutine beside it keeps ticking."""
    server, app = private_redis

    async def main() -> tuple[float, int]:
        client = make_async_client(server.url, FAST)
        queue = aio.JobQueue("email", app=app, client=client)
        await queue.add("test-record", {"n": 0})  # its template is built now
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        beside = asyncio.create_task(ticker())
        os.kill(server.process.pid, signal.SIGSTOP)
        started = time.monotonic()
        with pytest.raises(BrokerTimeoutError, match="may still store the job"):
            await queue.add("test-record", {"n": 1}, job_id="stalled-1")
        elapsed = time.monotonic() - started
        beside.cancel()
        os.kill(server.process.pid, signal.SIGCONT)
        await client.aclose()
        return elapsed, ticks

    elapsed, ticks = run(main)
    bound = (FAST.redis_max_retries + 1) * (0.5 + 0.5) + 0.2
    assert elapsed < bound + 1.0, elapsed
    assert ticks >= 0.5 * elapsed / 0.01, (ticks, elapsed)  # the loop was never blocked


def test_redis_down_fails_fast_with_the_broker_error(
    private_redis: tuple[RedisServer, Celery],
) -> None:
    _server, app = private_redis
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens here

    async def main() -> None:
        queue = aio.JobQueue("email", app=app, client=make_async_client(url, FAST))
        with pytest.raises(BrokerUnavailableError, match="could not be reached"):
            await queue.get_job_counts()

    started = time.monotonic()
    run(main)
    assert time.monotonic() - started < 5


def test_a_cancelled_add_stores_the_job_whole_or_not_at_all(
    private_redis: tuple[RedisServer, Celery],
) -> None:
    server, app = private_redis
    direct = redis.Redis.from_url(server.url)

    async def main() -> None:
        queue = aio.JobQueue("email", app=app, client=make_async_client(server.url, FAST))
        await queue.add("test-record", {"n": 0})
        os.kill(server.process.pid, signal.SIGSTOP)
        pending = asyncio.create_task(queue.add("test-record", {"n": 1}, job_id="cancelled-1"))
        await asyncio.sleep(0.2)  # sent, waiting for the reply
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending
        os.kill(server.process.pid, signal.SIGCONT)

    run(main)
    time.sleep(0.3)  # the server works through what it was sent
    record = direct.hgetall(keys.job_key("email", "cancelled-1"))
    listed = [json.loads(m)["headers"]["id"] for m in direct.lrange("email", 0, -1)]
    assert bool(record) == ("email:cancelled-1" in listed)  # both or neither
    if record:
        assert record[b"state"] == b"waiting" and record[b"msg"]

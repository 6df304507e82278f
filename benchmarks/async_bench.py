"""The asyncio API beside the sync one, in one run, and the example web app's speed.

    .venv/bin/python -m benchmarks.async_bench
    N=5000 WEBAPP_SECONDS=10 .venv/bin/python -m benchmarks.async_bench

Starts a private redis-server (noeviction, no persistence) on a free port. Prints a
table per part, then one line of JSON.

* enqueue: single ``add`` and ``add_bulk`` (batches of 1000), sync then asyncio
  (one ``await`` after another, and CONCURRENT adds in flight at once).
* helpers: each helper as a ratio to one GET on the same single connection, for the
  sync API (redis-py) and the asyncio API (redis.asyncio), measured alternately per
  round, the median of the per-round ratios reported.
* web app: requests per second that one uvicorn worker of examples/webapp serves
  for ``GET /api/session`` (session validated, rate limited per user), with
  CONNECTIONS keep-alive connections from a small raw HTTP client in this process
  (which shares the machine's cores with the server).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis

from benchmarks import helpers_bench
from benchmarks.helpers_bench import BASELINE

ROOT = Path(__file__).resolve().parent.parent
N = int(os.environ.get("N", "3000"))
"""Single adds per API; add_bulk moves 10 x N jobs."""
CONCURRENT = int(os.environ.get("CONCURRENT", "32"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "15"))
OPS_PER_ROUND = int(os.environ.get("BENCH_OPS", "300"))
WEBAPP_SECONDS = float(os.environ.get("WEBAPP_SECONDS", "6"))
CONNECTIONS = int(os.environ.get("CONNECTIONS", "32"))
USERS = 200
"""Signed-in users the web app's load is spread over (each within its API limit)."""


def main() -> None:
    from tests.support.redis_servers import start_redis

    server = start_redis("--maxmemory-policy", "noeviction")
    os.environ["REDIS_URL"] = server.url
    import benchmarks.tasks  # noqa: F401 - registers the benchmark tasks (after REDIS_URL)

    client = redis.Redis.from_url(server.url)
    results: dict[str, Any] = {"n": N, "concurrent": CONCURRENT}
    try:
        results.update(enqueue_rates(client))
        client.flushdb()
        results["helpers"] = helper_ratios(server.url)
        client.flushdb()
        results["webapp"] = webapp_rate(server.url)
    finally:
        server.stop()
    print(json.dumps({"benchmark": "async", **results}))


# --- enqueue ---------------------------------------------------------------------------
def enqueue_rates(client: redis.Redis) -> dict[str, float]:
    """Jobs per second of single adds and add_bulk, sync and asyncio."""
    from csgoflip_jobs import JobQueue, aio

    client.flushdb()
    queue = JobQueue("email", client=client)
    queue.add("bench-noop", {"n": -1})  # templates built, scripts loaded
    started = time.perf_counter()
    for n in range(N):
        queue.add("bench-noop", {"n": n})
    sync_single = N / (time.perf_counter() - started)
    started = time.perf_counter()
    for batch in _batches():
        queue.add_bulk(batch)
    sync_bulk = 10 * N / (time.perf_counter() - started)

    async def measure() -> tuple[float, float, float]:
        queue = aio.JobQueue("email")
        await queue.add("bench-noop", {"n": -1})
        started = time.perf_counter()
        for n in range(N):
            await queue.add("bench-noop", {"n": n})
        single = N / (time.perf_counter() - started)

        async def adder(first: int) -> None:
            for n in range(first, N, CONCURRENT):
                await queue.add("bench-noop", {"n": n})

        started = time.perf_counter()
        await asyncio.gather(*(adder(first) for first in range(CONCURRENT)))
        concurrent = N / (time.perf_counter() - started)
        started = time.perf_counter()
        for batch in _batches():
            await queue.add_bulk(batch)
        bulk = 10 * N / (time.perf_counter() - started)
        await aio.close()
        return single, concurrent, bulk

    async_single, async_concurrent, async_bulk = asyncio.run(measure())
    figures = {
        "sync_single_jobs_per_s": round(sync_single, 1),
        "async_single_jobs_per_s": round(async_single, 1),
        "async_concurrent_single_jobs_per_s": round(async_concurrent, 1),
        "sync_bulk_jobs_per_s": round(sync_bulk, 1),
        "async_bulk_jobs_per_s": round(async_bulk, 1),
        "async_to_sync_single": round(async_single / sync_single, 3),
        "async_to_sync_bulk": round(async_bulk / sync_bulk, 3),
    }
    print(f"{'enqueue':<44}{'jobs/s':>10}")
    for name, value in figures.items():
        print(f"{name:<44}{value:>10}")
    return figures


def _batches() -> list[list[dict[str, Any]]]:
    jobs = [{"name": "bench-noop", "data": {"n": n}} for n in range(10 * N)]
    return [jobs[i : i + 1000] for i in range(0, len(jobs), 1000)]


# --- helpers ---------------------------------------------------------------------------
def helper_ratios(url: str) -> dict[str, dict[str, float | None]]:
    """Median ratio to one GET per helper, sync and asyncio, rounds alternating."""
    sync_ratios: dict[str, list[float]] = {}
    async_ratios: dict[str, list[float]] = {}
    sync_ops = helpers_bench.sync_operations(redis.Redis.from_url(url, max_connections=1))

    async def run() -> None:
        async_ops = await _async_operations(url)
        for _ in range(ROUNDS):
            for name, operation in sync_ops.items():
                base = helpers_bench.time_per_op(sync_ops[BASELINE], OPS_PER_ROUND)
                spent = helpers_bench.time_per_op(operation, OPS_PER_ROUND)
                sync_ratios.setdefault(name, []).append(spent / base)
            for name, aoperation in async_ops.items():
                base = await _time_async(async_ops[BASELINE])
                async_ratios.setdefault(name, []).append(await _time_async(aoperation) / base)

    asyncio.run(run())
    table = {
        name: {
            "sync_ratio_to_get": round(statistics.median(sync_ratios[name]), 3),
            "async_ratio_to_get": round(statistics.median(async_ratios[name]), 3),
            "target": helpers_bench.TARGETS.get(name),
        }
        for name in sync_ratios
    }
    print(f"{'helper (x one GET, same connection)':<36}{'sync':>8}{'asyncio':>9}{'target':>8}")
    for name, row in table.items():
        target = "" if row["target"] is None else f"{row['target']:.1f}x"
        sync, async_ = row["sync_ratio_to_get"], row["async_ratio_to_get"]
        print(f"{name:<36}{sync:>8.2f}{async_:>9.2f}{target:>8}")
    return table


async def _async_operations(url: str) -> dict[str, Callable[[], Awaitable[object]]]:
    from csgoflip_jobs import aio

    client = aioredis.Redis.from_url(url, max_connections=1)
    await client.set("bench:plain", "x" * 64)
    sessions = aio.SessionService(client)
    session_id = (await sessions.create("bench-user", {"ip": "127.0.0.1"})).id
    cache = aio.CacheService(client)
    await cache.set("bench:hit", helpers_bench.CACHED_ITEM, ttl=600)
    limiter = aio.RateLimitService(client)
    redlock = aio.RedlockService([client])

    async def lock_cycle() -> None:
        await redlock.release(await redlock.acquire("bench:lock", 5000))

    operations: dict[str, Callable[[], Awaitable[object]]] = {
        BASELINE: lambda: client.get("bench:plain"),
        "rate limit check": lambda: limiter.is_rate_limited("bench:limit", 10**9, 3600),
        "session validate": lambda: sessions.validate(session_id),
        "cache hit": lambda: cache.cached("bench:hit", 600, helpers_bench.never_called),
        "lock acquire + release": lock_cycle,
    }
    for operation in operations.values():
        for _ in range(100):
            await operation()
    return operations


async def _time_async(operation: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    for _ in range(OPS_PER_ROUND):
        await operation()
    return (time.perf_counter() - started) / OPS_PER_ROUND


# --- the example web app -----------------------------------------------------------------
def webapp_rate(url: str) -> dict[str, float]:
    """Requests per second of one uvicorn worker for a session-validated, rate-limited
    endpoint, and the latency each request saw."""
    from csgoflip_jobs import SessionService
    from tests.support.redis_servers import free_port

    sessions = SessionService(redis.Redis.from_url(url))
    cookies = [sessions.create(1000 + n, {"name": f"bench{n}"}).id for n in range(USERS)]
    port = free_port()
    env = {**os.environ, "REDIS_URL": url, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(
        [sys.executable, "-m", "examples.webapp", "--port", str(port), "--log-level", "warning"],
        env=env,
        start_new_session=True,
    )
    try:
        rate, latencies = asyncio.run(_load(port, cookies))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(20)
    latencies.sort()
    figures = {
        "requests_per_s": round(rate, 1),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
        "connections": CONNECTIONS,
        "seconds": WEBAPP_SECONDS,
    }
    print(f"web app GET /api/session, one uvicorn worker, {CONNECTIONS} connections: "
          f"{figures['requests_per_s']} req/s, p50 {figures['p50_ms']} ms, "
          f"p99 {figures['p99_ms']} ms")  # fmt: skip
    return figures


async def _load(port: int, cookies: list[str]) -> tuple[float, list[float]]:
    await _wait_for(port)
    latencies: list[float] = []
    deadline = time.perf_counter() + WEBAPP_SECONDS

    async def connection(number: int) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        done = 0
        while time.perf_counter() < deadline:
            cookie = cookies[(number + done * CONNECTIONS) % len(cookies)]
            started = time.perf_counter()
            status = await _get(reader, writer, "/api/session", cookie)
            latencies.append(time.perf_counter() - started)
            if status != 200:
                raise RuntimeError(f"GET /api/session answered {status}")
            done += 1
        writer.close()
        return done

    started = time.perf_counter()
    counts = await asyncio.gather(*(connection(n) for n in range(CONNECTIONS)))
    return sum(counts) / (time.perf_counter() - started), latencies


async def _get(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str, cookie: str
) -> int:
    """One keep-alive HTTP/1.1 GET; its status (the body is read and dropped)."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nCookie: session={cookie}\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next(int(line.split(":", 1)[1]) for line in lines
                  if line.lower().startswith("content-length:"))  # fmt: skip
    await reader.readexactly(length)
    return int(lines[0].split()[1])


async def _wait_for(port: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


if __name__ == "__main__":
    main()

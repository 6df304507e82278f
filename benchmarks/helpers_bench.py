"""Cost of each Redis helper next to one raw redis-py GET, on the same connection.

    REDIS_URL=redis://127.0.0.1:6379/8 .venv/bin/python -m benchmarks.helpers_bench

Every operation runs in the same process, on the same single connection. Each
round times a block of GETs and, right after it, a block of the operation; the
ratio of the two is taken per round (so slow drifts of a noisy machine cancel)
and the median over rounds is reported. Prints a table and, last, one line of
JSON. Uses keys under ``bench:`` and removes them.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable

import redis

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "21"))
OPS_PER_ROUND = int(os.environ.get("BENCH_OPS", "500"))

TARGETS = {  # ratio to one GET round trip (issue 17)
    "rate limit check": 1.2,
    "session validate": 1.2,
    "cache hit": 1.2,
    "lock acquire + release": 2.0,
}


def main() -> None:
    url = os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/8")
    medians, ratios = measure(url)
    print(json.dumps(report(medians, ratios)))


BASELINE = "redis-py GET"
"""The operation every other is divided by."""
CACHED_ITEM = {"price": 1050, "name": "AK-47 | Redline"}


def measure(url: str) -> tuple[dict[str, float], dict[str, float]]:
    """Median seconds per operation and median ratio to a GET, per operation."""
    # One connection for everything: the comparison is about the helpers, not pooling.
    client = redis.Redis.from_url(url, max_connections=1)
    operations = sync_operations(client)
    get = operations[BASELINE]
    seconds: dict[str, list[float]] = {name: [] for name in operations}
    ratios: dict[str, list[float]] = {name: [] for name in operations}
    for _ in range(ROUNDS):
        for name, operation in operations.items():
            base = time_per_op(get)
            spent = time_per_op(operation)
            seconds[name].append(spent)
            ratios[name].append(spent / base)
    _cleanup(client)
    return (
        {name: statistics.median(values) for name, values in seconds.items()},
        {name: statistics.median(values) for name, values in ratios.items()},
    )


def sync_operations(client: redis.Redis) -> dict[str, Callable[[], object]]:
    """The operations measured, on ``client``, with their keys made and every one run
    a few hundred times (scripts loaded, connection warm)."""
    from csgoflip_jobs import CacheService, RateLimitService, RedlockService, SessionService

    client.set("bench:plain", "x" * 64)
    sessions = SessionService(client)
    session_id = sessions.create("bench-user", {"ip": "127.0.0.1"}).id
    cache = CacheService(client)
    cache.set("bench:hit", CACHED_ITEM, ttl=600)
    limiter = RateLimitService(client)
    redlock = RedlockService([client])

    def lock_cycle() -> None:
        redlock.release(redlock.acquire("bench:lock", 5000))

    operations: dict[str, Callable[[], object]] = {
        BASELINE: lambda: client.get("bench:plain"),
        "rate limit check": lambda: limiter.is_rate_limited("bench:limit", 10**9, 3600),
        "session validate": lambda: sessions.validate(session_id),
        "cache hit": lambda: cache.cached("bench:hit", 600, never_called),
        "lock acquire + release": lock_cycle,
    }
    for operation in operations.values():
        for _ in range(200):
            operation()
    return operations


def never_called() -> object:
    """The cache's loader in the benchmarks: its key always hits."""
    raise AssertionError("the benchmark's cache key should always hit")


def time_per_op(operation: Callable[[], object], ops: int = OPS_PER_ROUND) -> float:
    """Seconds per call of ``operation``, over ``ops`` calls in a row."""
    start = time.perf_counter()
    for _ in range(ops):
        operation()
    return (time.perf_counter() - start) / ops


def report(medians: dict[str, float], ratios: dict[str, float]) -> dict[str, object]:
    """Print the table; return the figures for the JSON line."""
    print(f"{'operation':<26}{'us/op':>9}{'x GET':>8}{'target':>9}  verdict")
    results = {}
    for name, seconds in medians.items():
        ratio = ratios[name]
        target = TARGETS.get(name)
        verdict = "" if target is None else ("meets" if ratio <= target else "MISSES")
        shown = "" if target is None else f"{target:.1f}x"
        print(f"{name:<26}{seconds * 1e6:>9.1f}{ratio:>8.2f}{shown:>9}  {verdict}")
        results[name] = {
            "us_per_op": round(seconds * 1e6, 2),
            "ratio_to_get": round(ratio, 3),
            "target": target,
        }
    return {
        "benchmark": "helpers",
        "rounds": ROUNDS,
        "ops_per_round": OPS_PER_ROUND,
        "results": results,
    }


def _cleanup(client: redis.Redis) -> None:
    for pattern in (
        "bench:*",
        "session:*",
        "user:bench-user:*",
        "ratelimit:bench:*",
        "cache:bench:*",
        "csgoflip:fence:bench:*",
    ):
        keys = list(client.scan_iter(match=pattern, count=1000))
        if keys:
            client.unlink(*keys)


if __name__ == "__main__":
    main()

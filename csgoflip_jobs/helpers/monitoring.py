"""``RedisMonitor.get_stats()``: the state of a Redis an operator watches, and the
start-up check that the queue Redis never evicts (:func:`check_eviction_policy`)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import redis
import redis.asyncio as aioredis

from csgoflip_jobs import keys
from csgoflip_jobs.helpers.errors import UnsafeBrokerError
from csgoflip_jobs.helpers.redis_calls import (
    AsyncRunner,
    Batch,
    C,
    Command,
    Invoke,
    RedisOps,
    Steps,
    SyncRunner,
    operation,
)
from csgoflip_jobs.settings import Settings, get_settings

STATS_SNAPSHOTS_KEEP = 1440
"""A day of one-minute snapshots."""

log = logging.getLogger(__name__)

QueueCounts = Callable[[], Any]
"""Returns (or, for the asyncio monitor, may return an awaitable of) jobs per state of
each queue: ``{queue: {state: count}}`` (the app wiring's ``job_counts_by_queue``)."""


@dataclass(frozen=True)
class RedisStats:
    """A snapshot of the queue Redis."""

    connected_clients: int
    used_memory_human: str
    total_keys: int
    hit_rate: float
    """hits / (hits + misses); 0.0 before the first lookup."""
    uptime_days: float
    maxmemory_policy: str
    evicted_keys: int
    queues: dict[str, dict[str, int]]
    """Jobs per state of each queue, when the monitor was given ``queue_counts``."""

    def as_dict(self) -> dict[str, Any]:
        """Plain data, for JSON."""
        return asdict(self)


class MonitorOps(RedisOps[C]):
    """The steps of the monitor's calls, shared by the sync and asyncio monitors."""

    def __init__(self, client: C | None = None, queue_counts: QueueCounts | None = None) -> None:
        super().__init__(client)
        self._queue_counts = queue_counts

    @operation
    def get_stats(self) -> Steps[RedisStats]:
        """Connected clients, memory, keys, hit rate, uptime, eviction (and queue counts)."""
        info, total_keys = yield Batch([Command("INFO"), Command("DBSIZE")])
        queue_counts = {} if self._queue_counts is None else (yield Invoke(self._queue_counts))
        hits = int(info.get("keyspace_hits", 0))
        misses = int(info.get("keyspace_misses", 0))
        lookups = hits + misses
        return RedisStats(
            connected_clients=int(info["connected_clients"]),
            used_memory_human=str(info["used_memory_human"]),
            total_keys=int(total_keys),
            hit_rate=hits / lookups if lookups else 0.0,
            uptime_days=round(int(info["uptime_in_seconds"]) / 86400, 2),
            maxmemory_policy=str(info.get("maxmemory_policy", "unknown")),
            evicted_keys=int(info.get("evicted_keys", 0)),
            queues={name: dict(counts) for name, counts in queue_counts.items()},
        )

    @operation
    def snapshot(self) -> Steps[RedisStats]:
        """Store the current stats in a capped list (for trends) and return them."""
        stats = yield from MonitorOps.get_stats.build(self)
        entry = json.dumps({"at": time.time(), **stats.as_dict()})
        yield Batch(
            [
                Command("LPUSH", keys.STATS_SNAPSHOTS_KEY, entry),
                Command("LTRIM", keys.STATS_SNAPSHOTS_KEY, 0, STATS_SNAPSHOTS_KEEP - 1),
            ]
        )
        return stats


class RedisMonitor(MonitorOps[redis.Redis], SyncRunner):
    """Reads INFO (and, given ``queue_counts``, the queues' job counts)."""


class AsyncRedisMonitor(MonitorOps[aioredis.Redis], AsyncRunner):
    """:class:`RedisMonitor` for asyncio (``queue_counts`` may be a coroutine function)."""


def check_eviction_policy(client: redis.Redis, settings: Settings | None = None) -> str | None:
    """Warn when the broker may evict keys; refuse (raise) in production.

    Returns the policy read, or None when the server does not allow CONFIG GET.
    """
    settings = settings or get_settings()
    try:
        policy = str(client.config_get("maxmemory-policy").get("maxmemory-policy"))
    except redis.ResponseError as exc:
        log.warning(
            "could not read the broker's maxmemory-policy (%s); make sure it is "
            "noeviction, or queued jobs and locks can vanish",
            exc,
        )
        return None
    if policy == "noeviction":
        return policy
    message = (
        f"the broker Redis has maxmemory-policy {policy!r}: under memory pressure it "
        "evicts queued jobs, locks and sessions; set it to 'noeviction' and keep "
        "caches on a separate Redis (CACHE_REDIS_URL)"
    )
    if settings.is_production:
        raise UnsafeBrokerError(message)
    log.warning(message)
    return policy

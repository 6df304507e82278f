"""``RedisMonitor.get_stats()``: the state of a Redis an operator watches, and the
start-up check that the queue Redis never evicts (:func:`check_eviction_policy`)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import redis

from csgoflip_jobs import keys
from csgoflip_jobs.helpers.connection import broker_client
from csgoflip_jobs.helpers.errors import UnsafeBrokerError
from csgoflip_jobs.settings import Settings, get_settings

STATS_SNAPSHOTS_KEEP = 1440
"""A day of one-minute snapshots."""

log = logging.getLogger(__name__)

QueueCounts = Callable[[], Mapping[str, Mapping[str, int]]]
"""Returns jobs per state of each queue (the app wiring's ``job_counts_by_queue``)."""


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


class RedisMonitor:
    """Reads INFO (and, given ``queue_counts``, the queues' job counts)."""

    def __init__(
        self, client: redis.Redis | None = None, queue_counts: QueueCounts | None = None
    ) -> None:
        self._client = client
        self._queue_counts = queue_counts

    @property
    def client(self) -> redis.Redis:
        """The queue Redis."""
        return self._client or broker_client()

    def snapshot(self) -> RedisStats:
        """Store the current stats in a capped list (for trends) and return them."""
        stats = self.get_stats()
        with self.client.pipeline(transaction=True) as pipe:
            pipe.lpush(keys.STATS_SNAPSHOTS_KEY, json.dumps({"at": time.time(), **stats.as_dict()}))
            pipe.ltrim(keys.STATS_SNAPSHOTS_KEY, 0, STATS_SNAPSHOTS_KEEP - 1)
            pipe.execute()
        return stats

    def get_stats(self) -> RedisStats:
        """Connected clients, memory, keys, hit rate, uptime, eviction (and queue counts)."""
        with self.client.pipeline(transaction=False) as pipe:
            pipe.info()
            pipe.dbsize()
            info, total_keys = pipe.execute()
        hits = int(info.get("keyspace_hits", 0))
        misses = int(info.get("keyspace_misses", 0))
        lookups = hits + misses
        queue_counts = self._queue_counts() if self._queue_counts is not None else {}
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

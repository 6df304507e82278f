"""``RedisMonitor.get_stats()``: the original fields plus what an operator of queues needs."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

import redis

from csgoflip_jobs import keys
from csgoflip_jobs.engine.job_queue import JobQueue
from csgoflip_jobs.helpers.connection import broker_client
from csgoflip_jobs.settings import QUEUE_NAMES


@dataclass(frozen=True)
class QueueStats:
    """One queue's depths and retained jobs."""

    waiting: int
    delayed: int
    active: int
    completed: int
    failed: int


@dataclass(frozen=True)
class RedisStats:
    """A snapshot of the queue Redis."""

    connected_clients: int
    used_memory_human: str
    total_keys: int
    hit_rate: float
    """hits / (hits + misses); 0.0 before the first lookup (the original divided by zero)."""
    uptime_days: float
    maxmemory_policy: str
    evicted_keys: int
    queues: dict[str, QueueStats]

    def as_dict(self) -> dict[str, Any]:
        """Plain data, for JSON."""
        return asdict(self)


class RedisMonitor:
    """Reads INFO and the queues' counts."""

    def __init__(self, client: redis.Redis | None = None) -> None:
        self._client = client

    @property
    def client(self) -> redis.Redis:
        """The queue Redis."""
        return self._client or broker_client()

    def snapshot(self) -> RedisStats:
        """Store the current stats in a capped list (for trends) and return them."""
        stats = self.get_stats()
        with self.client.pipeline(transaction=True) as pipe:
            pipe.lpush(keys.STATS_SNAPSHOTS_KEY, json.dumps({"at": time.time(), **stats.as_dict()}))
            pipe.ltrim(keys.STATS_SNAPSHOTS_KEY, 0, keys.STATS_SNAPSHOTS_KEEP - 1)
            pipe.execute()
        return stats

    def get_stats(self) -> RedisStats:
        """Connected clients, memory, keys, hit rate, uptime, eviction, and queue counts."""
        with self.client.pipeline(transaction=False) as pipe:
            pipe.info()
            pipe.dbsize()
            info, total_keys = pipe.execute()
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
            queues={
                name: QueueStats(**JobQueue(name, client=self.client).get_job_counts())
                for name in QUEUE_NAMES
            },
        )

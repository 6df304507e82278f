"""RedisMonitor.get_stats(): original fields, a defined hit rate, eviction and queue counts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from csgoflip_jobs import JobQueue, RedisMonitor
from csgoflip_jobs.celery_app import job_counts_by_queue
from tests.support.redis_servers import RedisServer, start_redis


@pytest.fixture
def fresh_server() -> Iterator[RedisServer]:
    server = start_redis("--maxmemory-policy", "volatile-lru")
    yield server
    server.stop()


def test_hit_rate_is_defined_before_any_lookup(fresh_server: RedisServer) -> None:
    client = redis.Redis.from_url(fresh_server.url)
    client.config_resetstat()
    stats = RedisMonitor(client).get_stats()
    assert stats.hit_rate == 0.0
    assert stats.maxmemory_policy == "volatile-lru"
    # Reading the queue counts is itself a lookup; start the count from here.
    client.config_resetstat()
    client.set("a", 1)
    client.get("a"), client.get("a"), client.get("a"), client.get("missing")
    assert RedisMonitor(client).get_stats().hit_rate == 0.75


def test_stats_have_the_original_fields_and_queue_counts(redis_client: redis.Redis) -> None:
    JobQueue("payment").add("test-record", {"n": 1}, delay=60_000)
    JobQueue("email").add_bulk([{"name": "test-record", "data": {"n": n}} for n in range(3)])
    stats = RedisMonitor(redis_client, queue_counts=job_counts_by_queue).get_stats()
    assert stats.connected_clients >= 1
    assert stats.used_memory_human.endswith(("K", "M", "G", "B"))
    assert stats.total_keys >= 4
    assert stats.uptime_days >= 0
    assert stats.maxmemory_policy == "noeviction" and stats.evicted_keys >= 0
    assert stats.queues["payment"]["delayed"] == 1
    assert stats.queues["email"]["waiting"] == 3
    assert stats.queues["notification"]["completed"] == 0
    assert stats.as_dict()["queues"]["email"]["waiting"] == 3


def test_without_queue_counts_the_stats_read_no_queue(redis_client: redis.Redis) -> None:
    """The helper knows no job engine: queue counts come only from the provider given."""
    JobQueue("email").add("test-record", {"n": 1})
    assert RedisMonitor(redis_client).get_stats().queues == {}

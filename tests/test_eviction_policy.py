"""Worker start-up checks the broker's maxmemory-policy."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from csgoflip_jobs.helpers.errors import UnsafeBrokerError
from csgoflip_jobs.helpers.monitoring import check_eviction_policy
from csgoflip_jobs.settings import Settings
from tests.support.redis_servers import RedisServer, start_redis
from tests.support.workers import WorkerProcess


@pytest.fixture
def evicting_redis() -> Iterator[RedisServer]:
    server = start_redis("--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru")
    yield server
    server.stop()


def test_worker_warns_loudly_when_the_broker_evicts(
    evicting_redis: RedisServer,
    workers: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    worker = workers(env={"REDIS_URL": evicting_redis.url})
    assert "maxmemory-policy 'allkeys-lru'" in worker.log()
    assert "noeviction" in worker.log()


def test_production_refuses_an_evicting_broker(evicting_redis: RedisServer) -> None:
    client = redis.Redis.from_url(evicting_redis.url)
    with pytest.raises(UnsafeBrokerError, match="allkeys-lru"):
        check_eviction_policy(client, Settings(app_env="production"))


def test_noeviction_passes_quietly(redis_client: redis.Redis) -> None:
    assert check_eviction_policy(redis_client, Settings(app_env="production")) == "noeviction"

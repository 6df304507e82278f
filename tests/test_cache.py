"""CacheService: SCAN not KEYS, None is a hit, no stampede, failures cache nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from csgoflip_jobs import CacheService
from csgoflip_jobs.helpers.cache import escape_glob
from csgoflip_jobs.keys import cache_fill_lock_key


@pytest.fixture
def cache(redis_client: redis.Redis) -> CacheService:
    return CacheService(redis_client)


def command_calls(client: redis.Redis, command: str) -> int:
    stats = client.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def test_get_set_with_the_default_ttl(cache: CacheService, redis_client: redis.Redis) -> None:
    cache.set("skins:ak47", {"price": 1050})
    assert cache.get("skins:ak47") == {"price": 1050}
    assert 295 <= redis_client.ttl("cache:skins:ak47") <= 300
    cache.set("short", 1, ttl=5)
    assert redis_client.ttl("cache:short") <= 5
    assert cache.get("absent") is None and cache.get("absent", "dflt") == "dflt"
    assert cache.invalidate("skins:ak47") is True and cache.get("skins:ak47") is None


def test_a_cached_none_is_a_hit(cache: CacheService) -> None:
    calls: list[int] = []

    def factory() -> None:
        calls.append(1)

    assert cache.cached("user:1:avatar", 60, factory) is None
    assert cache.cached("user:1:avatar", 60, factory) is None
    assert calls == [1]
    assert cache.get("user:1:avatar", "miss") is None


def test_invalidate_pattern_uses_scan_and_unlink_never_keys(
    cache: CacheService, redis_client: redis.Redis
) -> None:
    with redis_client.pipeline() as pipe:
        for n in range(1200):
            pipe.set(f"cache:case:{n}", "1")
        pipe.set("cache:other", "1")
        pipe.set("case:not-cache", "1")
        pipe.execute()
    keys_before = command_calls(redis_client, "keys")
    scans_before = command_calls(redis_client, "scan")
    unlinks_before = command_calls(redis_client, "unlink")
    assert cache.invalidate_pattern("case:*") == 1200
    assert command_calls(redis_client, "keys") == keys_before
    assert command_calls(redis_client, "scan") > scans_before
    assert command_calls(redis_client, "unlink") - unlinks_before >= 3  # batches of 500
    assert redis_client.exists("cache:other") and redis_client.exists("case:not-cache")


def test_20_concurrent_callers_in_4_processes_run_the_factory_once(
    redis_client: redis.Redis,
) -> None:
    start_at = time.time() + 2.0  # all processes start calling at the same moment
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.support.stampede", "5", str(start_at), "leaderboard"],
            stdout=subprocess.PIPE,
            env=dict(os.environ),
            cwd=Path(__file__).resolve().parent.parent,
        )
        for _ in range(4)
    ]
    outputs = [json.loads(child.communicate(timeout=60)[0]) for child in children]
    results = [value for output in outputs for value in output]
    assert len(results) == 20
    assert redis_client.get("test:factory-runs") == b"1"
    assert len({json.dumps(value) for value in results}) == 1
    assert not redis_client.exists(cache_fill_lock_key("leaderboard"))


def test_a_factory_that_raises_caches_nothing(
    cache: CacheService, redis_client: redis.Redis
) -> None:
    def failing() -> int:
        raise RuntimeError("steam api down")

    with pytest.raises(RuntimeError, match="steam api down"):
        cache.cached("prices", 60, failing)
    assert not redis_client.exists("cache:prices")
    assert not redis_client.exists(cache_fill_lock_key("prices"))
    assert cache.cached("prices", 60, lambda: 42) == 42


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.get(""),
        lambda c: c.set("k", 1, ttl=-1),
        lambda c: c.set("k", 1, ttl=0),
        lambda c: c.cached("k", 10, "not callable"),
        lambda c: c.cached("", 10, lambda: 1),
        lambda c: c.cached("k", -10, lambda: 1),
        lambda c: c.invalidate_pattern(""),
    ],
)
def test_bad_arguments_raise_value_error(
    cache: CacheService, call: Callable[[CacheService], Any]
) -> None:
    with pytest.raises(ValueError):
        call(cache)


def test_a_glob_character_in_a_user_id_invalidates_that_user_only(cache: CacheService) -> None:
    """invalidate_pattern("user:a*b:*") also dropped user:aXYZb:profile: the id is text."""
    for user in ("a*b", "aXYZb", "a?b"):
        cache.set(f"user:{user}:profile", {"user": user})
    assert cache.invalidate_prefix("user:a*b:") == 1
    assert cache.get("user:aXYZb:profile") == {"user": "aXYZb"}
    assert cache.invalidate_pattern(f"user:{escape_glob('a?b')}:*") == 1
    assert cache.get("user:aXYZb:profile") == {"user": "aXYZb"}
    assert cache.invalidate_pattern("user:a*b:*") == 1  # a glob is still a glob

"""RateLimitService: one atomic round trip, always a TTL, exact under concurrency."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
import redis

from csgoflip_jobs import RateLimitService


def test_50_concurrent_callers_against_a_limit_of_10_admit_exactly_10(
    redis_client: redis.Redis, redis_url: str
) -> None:
    admitted: list[bool] = []
    barrier = threading.Barrier(50)

    def caller() -> None:
        limiter = RateLimitService(redis.Redis.from_url(redis_url))
        limiter.is_rate_limited("warm", 1000, 60)  # connect and load the script first
        barrier.wait()
        admitted.append(not limiter.is_rate_limited("login:10.0.0.1", 10, 60))

    threads = [threading.Thread(target=caller) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert admitted.count(True) == 10 and len(admitted) == 50


def test_a_check_is_one_round_trip_and_always_leaves_a_ttl(
    redis_client: redis.Redis, round_trips: list[int]
) -> None:
    limiter = RateLimitService(redis_client)
    limiter.check("warm", 5, 30)
    before = round_trips[0]
    result = limiter.check("api:user:1", 5, 30)
    assert round_trips[0] - before == 1
    assert (result.limited, result.count, result.remaining) == (False, 1, 4)
    assert 0 < result.reset_after_s <= 30
    assert 0 < redis_client.ttl("ratelimit:api:user:1") <= 30


def test_a_counter_left_without_ttl_is_repaired(redis_client: redis.Redis) -> None:
    redis_client.set("ratelimit:stuck", 500)  # what the original's crash left behind
    limiter = RateLimitService(redis_client)
    assert limiter.is_rate_limited("stuck", 10, 60) is True
    assert 0 < redis_client.ttl("ratelimit:stuck") <= 60


def test_remaining_attempts_and_reset_seconds(redis_client: redis.Redis) -> None:
    limiter = RateLimitService(redis_client)
    assert limiter.get_remaining_attempts("withdraw:1", 3) == 3
    assert limiter.get_reset_seconds("withdraw:1") == 0
    results = [limiter.is_rate_limited("withdraw:1", 3, 120) for _ in range(4)]
    assert results == [False, False, False, True]
    assert limiter.get_remaining_attempts("withdraw:1", 3) == 0
    assert 0 < limiter.get_reset_seconds("withdraw:1") <= 120


@pytest.mark.parametrize(
    "call",
    [
        lambda r: r.is_rate_limited("", 10, 60),
        lambda r: r.is_rate_limited("k", 0, 60),
        lambda r: r.is_rate_limited("k", -1, 60),
        lambda r: r.is_rate_limited("k", 10, 0),
        lambda r: r.get_remaining_attempts("k", 0),
    ],
)
def test_bad_arguments_raise_value_error(
    redis_client: redis.Redis, call: Callable[[RateLimitService], Any]
) -> None:
    with pytest.raises(ValueError):
        call(RateLimitService(redis_client))

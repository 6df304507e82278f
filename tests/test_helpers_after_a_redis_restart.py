"""Helpers keep working when Redis has lost its Lua scripts, as after a restart."""

from __future__ import annotations

import redis

from csgoflip_jobs import CacheService, RateLimitService, RedlockService, SessionService


def test_every_helper_reloads_its_script_after_a_script_flush(redis_client: redis.Redis) -> None:
    sessions = SessionService(redis_client)
    session_id = sessions.create(7, {"ip": "127.0.0.1"}).id
    limiter = RateLimitService(redis_client)
    redlock = RedlockService([redis_client])
    cache = CacheService(redis_client)

    redis_client.script_flush()
    assert limiter.is_rate_limited("login:7", 1, 60) is False
    redis_client.script_flush()
    validated = sessions.validate(session_id)
    assert validated is not None and validated.user_id == 7
    redis_client.script_flush()
    lock = redlock.acquire("withdrawal:7", 5000)
    redis_client.script_flush()
    assert redlock.release(lock) == 1
    redis_client.script_flush()
    assert cache.cached("price:7", 60, lambda: 1050) == 1050
    assert limiter.is_rate_limited("login:7", 1, 60) is True  # the count survived

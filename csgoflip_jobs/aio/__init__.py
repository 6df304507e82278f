"""The asyncio API: the names of ``csgoflip_jobs``, awaited.

    from csgoflip_jobs.aio import JobQueue, SessionService

    job_id = await JobQueue("payment").add("process-withdrawal", {"withdrawal_id": 42})
    session = await SessionService().validate(session_id)
    async with RedlockService().lock("user:42:balance", 5000) as signal: ...
    async for event in QueueEvents("payment"): ...

Each class runs the same steps as its sync twin (one source of truth for scripts,
keys, arguments and messages: :mod:`csgoflip_jobs.helpers.redis_calls`) on
redis.asyncio, with the same connection bounds and errors. Clients belong to the
event loop that first uses them; :func:`close` closes the running loop's.
Importing this package does nothing; each name is imported on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, tuple[str, str]] = {
    "JobQueue": ("csgoflip_jobs.engine.job_queue", "AsyncJobQueue"),
    "QueueEvents": ("csgoflip_jobs.engine.events", "AsyncQueueEvents"),
    "SessionService": ("csgoflip_jobs.helpers.sessions", "AsyncSessionService"),
    "CacheService": ("csgoflip_jobs.helpers.cache", "AsyncCacheService"),
    "RateLimitService": ("csgoflip_jobs.helpers.rate_limit", "AsyncRateLimitService"),
    "RedlockService": ("csgoflip_jobs.helpers.redlock", "AsyncRedlockService"),
    "RedisService": ("csgoflip_jobs.helpers.redis_service", "AsyncRedisService"),
    "RedisMonitor": ("csgoflip_jobs.helpers.monitoring", "AsyncRedisMonitor"),
    "close": ("csgoflip_jobs.helpers.clients", "close_async_clients"),
}

__all__ = [
    "CacheService",
    "JobQueue",
    "QueueEvents",
    "RateLimitService",
    "RedisMonitor",
    "RedisService",
    "RedlockService",
    "SessionService",
    "close",
]


def __getattr__(name: str) -> Any:
    found = _EXPORTS.get(name)
    if found is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(found[0]), found[1])
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


if TYPE_CHECKING:  # what type checkers and IDEs see; nothing of it runs
    from csgoflip_jobs.engine.events import AsyncQueueEvents as QueueEvents
    from csgoflip_jobs.engine.job_queue import AsyncJobQueue as JobQueue
    from csgoflip_jobs.helpers.cache import AsyncCacheService as CacheService
    from csgoflip_jobs.helpers.clients import close_async_clients as close
    from csgoflip_jobs.helpers.monitoring import AsyncRedisMonitor as RedisMonitor
    from csgoflip_jobs.helpers.rate_limit import AsyncRateLimitService as RateLimitService
    from csgoflip_jobs.helpers.redis_service import AsyncRedisService as RedisService
    from csgoflip_jobs.helpers.redlock import AsyncRedlockService as RedlockService
    from csgoflip_jobs.helpers.sessions import AsyncSessionService as SessionService

"""The process's Redis clients by role, for the sync and the asyncio APIs.

Roles: ``queue`` (the queue Redis: jobs, sessions, rate limits, locks' default),
``cache`` (CACHE_REDIS_URL, which may evict) and ``locks`` (the independent masters
of REDLOCK_URLS). Sync clients are shared by the whole process (redis-py's are
thread-safe); asyncio clients belong to the event loop that uses them, so each
running loop gets its own. Both carry the same connection semantics
(:mod:`csgoflip_jobs.helpers.connection`): connect and command timeouts, and at most
REDIS_MAX_RETRIES + 1 tries per call, never nested.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from functools import cache
from typing import Any, Literal, TypeVar
from weakref import WeakKeyDictionary

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff

from csgoflip_jobs.helpers.connection import (
    LinearCappedBackoff,
    bounded_retryable,
    broker_client,
    connection_kwargs,
    make_client,
)
from csgoflip_jobs.helpers.sentinel import async_master_client, is_sentinel_url
from csgoflip_jobs.settings import Settings, get_settings

T = TypeVar("T")
Role = Literal["queue", "cache", "locks"]

LOCK_MASTER_TIMEOUT_S = 0.5
"""A lock master that does not answer within this counts as failed for that attempt."""

_retrying: ContextVar[bool] = ContextVar("csgoflip_async_retrying", default=False)


class AsyncBoundedRetry(AsyncRetry):
    """redis.asyncio's Retry, bounded as the sync client's is: a retry inside another
    tries once, and a refused password is never retried."""

    async def call_with_retry(
        self,
        do: Callable[[], Awaitable[T]],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        """Call ``do``, retrying as redis-py would unless nested or refused a password."""
        retryable = bounded_retryable(is_retryable)
        if _retrying.get():
            once = AsyncRetry(NoBackoff(), 0, self._supported_errors)
            return await once.call_with_retry(do, fail, retryable, with_failure_count)
        token = _retrying.set(True)
        try:
            return await super().call_with_retry(do, fail, retryable, with_failure_count)
        finally:
            _retrying.reset(token)


def async_connection_kwargs(settings: Settings) -> dict[str, Any]:
    """:func:`~csgoflip_jobs.helpers.connection.connection_kwargs` for redis.asyncio."""
    kwargs = connection_kwargs(settings)
    kwargs["retry"] = AsyncBoundedRetry(
        LinearCappedBackoff(settings.redis_retry_step_ms, settings.redis_retry_cap_ms),
        settings.redis_max_retries,
    )
    return kwargs


def make_async_client(
    url: str, settings: Settings | None = None, **overrides: Any
) -> aioredis.Redis:
    """A new redis.asyncio client for ``url`` with the platform's connection semantics
    (for a Sentinel URL, a client of the master the sentinels name)."""
    settings = settings or get_settings()
    kwargs = async_connection_kwargs(settings)
    kwargs.update(overrides)
    if is_sentinel_url(url):
        return async_master_client(url, settings, **kwargs)
    client: aioredis.Redis = aioredis.Redis.from_url(url, **kwargs)
    return client


_LOCK_MASTER = {
    "socket_connect_timeout": LOCK_MASTER_TIMEOUT_S,
    "socket_timeout": LOCK_MASTER_TIMEOUT_S,
}
"""Redlock retries by itself, so a master that is down must fail fast."""


@cache
def cache_client() -> redis.Redis:
    """The process-wide client of the cache Redis."""
    return make_client(get_settings().cache_url)


@cache
def lock_master_clients() -> list[redis.Redis]:
    """The process-wide clients of the lock masters (no client-side retries)."""
    return [lock_master_client(url) for url in get_settings().redlock_url_list]


def lock_master_client(url: str) -> redis.Redis:
    """A client for one lock master: short timeouts, no client-side retries."""
    return make_client(
        url,
        retry=redis.retry.Retry(NoBackoff(), 0),
        socket_connect_timeout=LOCK_MASTER_TIMEOUT_S,
        socket_timeout=LOCK_MASTER_TIMEOUT_S,
    )


def sync_clients(role: Role) -> list[redis.Redis]:
    """The process's sync clients of ``role``."""
    if role == "locks":
        return lock_master_clients()
    return [broker_client() if role == "queue" else cache_client()]


_per_loop: WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Role, list[aioredis.Redis]]] = (
    WeakKeyDictionary()
)


def async_clients(role: Role) -> list[aioredis.Redis]:
    """The running event loop's asyncio clients of ``role``."""
    made = _per_loop.setdefault(asyncio.get_running_loop(), {})
    if role not in made:
        made[role] = _new_async_clients(role, get_settings())
    return made[role]


def _new_async_clients(role: Role, settings: Settings) -> list[aioredis.Redis]:
    if role == "locks":
        once = AsyncRetry(NoBackoff(), 0)
        return [
            make_async_client(url, settings, retry=once, **_LOCK_MASTER)
            for url in settings.redlock_url_list
        ]
    return [make_async_client(settings.broker_url if role == "queue" else settings.cache_url)]


async def close_async_clients() -> None:
    """Close the running event loop's clients (at a web app's shutdown)."""
    for clients in _per_loop.pop(asyncio.get_running_loop(), {}).values():
        for client in clients:
            await client.aclose()

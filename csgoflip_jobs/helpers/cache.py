"""``CacheService``: JSON values under ``cache:``, with stampede protection.

Invariants: ``invalidate_pattern`` never blocks Redis (SCAN, then UNLINK in
batches); a cached None is a hit; when many callers (in any number of processes,
threads or coroutines) miss the same cold key at once, one runs the factory and
the others wait for its value; a factory that raises caches nothing.

Caches live on ``CACHE_REDIS_URL``, which may evict (allkeys-lru).
:class:`CacheService` is the sync API, :class:`AsyncCacheService` the asyncio one
(its ``cached`` takes a coroutine function too); both run :class:`CacheOps`' steps.
"""

from __future__ import annotations

import inspect
import json
import uuid
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import redis
import redis.asyncio as aioredis

from csgoflip_jobs import keys
from csgoflip_jobs.helpers import scripts as lua_scripts
from csgoflip_jobs.helpers.arguments import require_callable, require_key, require_positive
from csgoflip_jobs.helpers.clients import Role
from csgoflip_jobs.helpers.connection import SCAN_BATCH
from csgoflip_jobs.helpers.redis_calls import (
    AsyncRunner,
    Batch,
    C,
    Command,
    Invoke,
    RedisOps,
    ScriptCall,
    Sleep,
    Steps,
    SyncRunner,
    operation,
)

T = TypeVar("T")

CACHE_DEFAULT_TTL_S = 300

CACHE_FILL_LOCK_TTL_MS = 10_000
"""Longest one caller may hold the right to fill a cold key before others take over."""

CACHE_FILL_POLL_S = 0.01
"""How often callers waiting for another caller's fill look for the value."""

_MISS = object()


def escape_glob(text: str) -> str:
    """``text`` with Redis glob syntax escaped, to match itself only inside a pattern
    (``invalidate_pattern(f"user:{escape_glob(user_id)}:*")``)."""
    return "".join(f"\\{ch}" if ch in "*?[]\\^" else ch for ch in text)


class CacheOps(RedisOps[C]):
    """The steps of every cache call, shared by the sync and asyncio services."""

    redis_role: ClassVar[Role] = "cache"

    def __init__(self, client: C | None = None, default_ttl_s: int = CACHE_DEFAULT_TTL_S) -> None:
        super().__init__(client)
        self.default_ttl_s = require_positive("default_ttl_s", default_ttl_s)

    @operation
    def get(self, key: str, default: Any = None) -> Steps[Any]:
        """The cached value, or ``default`` on a miss (a cached None is returned as None)."""
        value = yield from self._lookup(key)
        return default if value is _MISS else value

    @operation
    def set(self, key: str, value: Any, ttl: int | None = None) -> Steps[None]:
        """Cache a JSON-serialisable value for ``ttl`` seconds (default 300)."""
        ttl_s = self._ttl(ttl)
        yield Command(
            "SET", keys.cache_key(require_key("key", key)), json.dumps(value), "EX", ttl_s
        )

    @operation
    def invalidate(self, key: str) -> Steps[bool]:
        """Drop one cached value; False when it was not cached."""
        return bool((yield Command("UNLINK", keys.cache_key(require_key("key", key)))))

    @operation
    def invalidate_pattern(self, pattern: str) -> Steps[int]:
        """Drop every cached key matching the Redis glob ``pattern`` (``*``, ``?``,
        ``[...]`` and ``\\`` are glob syntax: pass text from users through
        :func:`escape_glob`, or use :meth:`invalidate_prefix`); how many. Never blocks
        Redis with KEYS."""
        return (yield from self._invalidate(require_key("pattern", pattern)))

    @operation
    def invalidate_prefix(self, prefix: str) -> Steps[int]:
        """Drop every cached key starting with ``prefix``, taken literally (a ``*`` in a
        user id matches only itself); how many."""
        return (yield from self._invalidate(f"{escape_glob(require_key('prefix', prefix))}*"))

    def _invalidate(self, pattern: str) -> Steps[int]:
        match = keys.cache_key(pattern)
        removed, cursor = 0, b"0"
        while True:
            cursor, found = yield Command("SCAN", cursor, "MATCH", match, "COUNT", SCAN_BATCH)
            if found:
                removed += int((yield Command("UNLINK", *found)))
            if int(cursor) == 0:
                return removed

    @operation
    def cached(self, key: str, ttl: int | None, factory: Callable[[], Any]) -> Steps[Any]:
        """The cached value of ``key``, computing it with ``factory()`` once on a miss."""
        require_key("key", key)
        require_callable("factory", factory)
        self._check_factory(factory)
        ttl_s = self._ttl(ttl)
        value = yield from self._lookup(key)
        if value is not _MISS:
            return value
        lock_key, token = keys.cache_fill_lock_key(key), uuid.uuid4().hex
        while True:
            taken = yield Command("SET", lock_key, token, "NX", "PX", CACHE_FILL_LOCK_TTL_MS)
            if taken:
                return (yield from self._fill(key, ttl_s, factory, lock_key, token))
            value = yield from self._wait_for_fill(key, lock_key)
            if value is not _MISS:
                return value
            # The filler gave up (its factory raised) or its lock expired: try to fill.

    def _check_factory(self, factory: Callable[[], Any]) -> None:
        """Sync services take plain functions only (an async one would be cached unrun)."""
        if isinstance(self, SyncRunner) and inspect.iscoroutinefunction(factory):
            raise ValueError("factory is a coroutine function: use csgoflip_jobs.aio's cache")

    def _ttl(self, ttl: int | None) -> int:
        return self.default_ttl_s if ttl is None else require_positive("ttl", ttl)

    def _lookup(self, key: str) -> Steps[Any]:
        raw = yield Command("GET", keys.cache_key(require_key("key", key)))
        if raw is None:
            return _MISS
        try:
            return json.loads(raw)
        except ValueError:
            return _MISS  # not written by us: recompute and overwrite

    def _fill(
        self, key: str, ttl_s: int, factory: Callable[[], Any], lock_key: str, token: str
    ) -> Steps[Any]:
        try:
            value = yield Invoke(factory)
        except BaseException:
            yield ScriptCall(lua_scripts.COMPARE_AND_DELETE, [lock_key], [token])
            raise
        yield ScriptCall(
            lua_scripts.CACHE_STORE_AND_RELEASE,
            [keys.cache_key(key), lock_key],
            [json.dumps(value), ttl_s, token],
        )
        return value

    def _wait_for_fill(self, key: str, lock_key: str) -> Steps[Any]:
        """Poll until the value appears (returned) or the fill lock is gone (_MISS)."""
        while True:
            yield Sleep(CACHE_FILL_POLL_S)
            raw, locked = yield Batch(
                [Command("GET", keys.cache_key(key)), Command("EXISTS", lock_key)]
            )
            if raw is not None:
                return json.loads(raw)
            if not locked:
                return _MISS


class CacheService(CacheOps[redis.Redis], SyncRunner):
    """get / set / invalidate / invalidate_pattern / cached over the cache Redis."""


class AsyncCacheService(CacheOps[aioredis.Redis], AsyncRunner):
    """:class:`CacheService` for asyncio; ``cached`` awaits a coroutine function's result."""

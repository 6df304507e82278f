"""``CacheService``: JSON values under ``cache:``, with stampede protection.

Invariants: ``invalidate_pattern`` never blocks Redis (SCAN, then UNLINK in
batches); a cached None is a hit; when many callers (in any number of processes)
miss the same cold key at once, one runs the factory and the others wait for its
value; a factory that raises caches nothing.

Caches live on ``CACHE_REDIS_URL``, which may evict (allkeys-lru).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import redis

from csgoflip_jobs import keys
from csgoflip_jobs.helpers import scripts as lua_scripts
from csgoflip_jobs.helpers.arguments import require_callable, require_key, require_positive
from csgoflip_jobs.helpers.connection import SCAN_BATCH, make_client
from csgoflip_jobs.settings import get_settings

CACHE_DEFAULT_TTL_S = 300

CACHE_FILL_LOCK_TTL_MS = 10_000
"""Longest one caller may hold the right to fill a cold key before others take over."""

CACHE_FILL_POLL_S = 0.01
"""How often callers waiting for another process's fill look for the value."""

T = TypeVar("T")


_MISS = object()


class CacheService:
    """get / set / invalidate / invalidate_pattern / cached over the cache Redis."""

    def __init__(
        self, client: redis.Redis | None = None, default_ttl_s: int = CACHE_DEFAULT_TTL_S
    ) -> None:
        self.client = client or make_client(get_settings().cache_url)
        self.default_ttl_s = require_positive("default_ttl_s", default_ttl_s)

    def get(self, key: str, default: Any = None) -> Any:
        """The cached value, or ``default`` on a miss (a cached None is returned as None)."""
        value = self._lookup(key)
        return default if value is _MISS else value

    def set(self, key: str, value: Any, ttl: int | None = None) -> None:
        """Cache a JSON-serialisable value for ``ttl`` seconds (default 300)."""
        ttl_s = self.default_ttl_s if ttl is None else require_positive("ttl", ttl)
        self.client.set(keys.cache_key(require_key("key", key)), json.dumps(value), ex=ttl_s)

    def invalidate(self, key: str) -> bool:
        """Drop one cached value; False when it was not cached."""
        return bool(self.client.unlink(keys.cache_key(require_key("key", key))))

    def invalidate_pattern(self, pattern: str) -> int:
        """Drop every cached key matching a glob ``pattern``; never blocks Redis with KEYS."""
        match = keys.cache_key(require_key("pattern", pattern))
        removed = 0
        batch: list[Any] = []
        for key in self.client.scan_iter(match=match, count=SCAN_BATCH):
            batch.append(key)
            if len(batch) >= SCAN_BATCH:
                removed += int(self.client.unlink(*batch))
                batch.clear()
        if batch:
            removed += int(self.client.unlink(*batch))
        return removed

    def cached(self, key: str, ttl: int | None, factory: Callable[[], T]) -> T:
        """The cached value of ``key``, computing it with ``factory()`` once on a miss."""
        require_key("key", key)
        require_callable("factory", factory)
        ttl_s = self.default_ttl_s if ttl is None else require_positive("ttl", ttl)
        value = self._lookup(key)
        if value is not _MISS:
            return value  # type: ignore[no-any-return]
        return self._fill(key, ttl_s, factory)

    def _lookup(self, key: str) -> Any:
        raw = self.client.get(keys.cache_key(require_key("key", key)))
        if raw is None:
            return _MISS
        try:
            return json.loads(raw)
        except ValueError:
            return _MISS  # not written by us: recompute and overwrite

    def _fill(self, key: str, ttl_s: int, factory: Callable[[], T]) -> T:
        lock_key = keys.cache_fill_lock_key(key)
        token = uuid.uuid4().hex
        while True:
            if self.client.set(lock_key, token, nx=True, px=CACHE_FILL_LOCK_TTL_MS):
                return self._compute(key, ttl_s, factory, lock_key, token)
            value = self._wait_for_fill(key, lock_key)
            if value is not _MISS:
                return value  # type: ignore[no-any-return]
            # The filler gave up (its factory raised) or its lock expired: try to fill.

    def _compute(
        self, key: str, ttl_s: int, factory: Callable[[], T], lock_key: str, token: str
    ) -> T:
        try:
            value = factory()
        except BaseException:
            lua_scripts.COMPARE_AND_DELETE(keys=[lock_key], args=[token], client=self.client)
            raise
        lua_scripts.CACHE_STORE_AND_RELEASE(
            keys=[keys.cache_key(key), lock_key],
            args=[json.dumps(value), ttl_s, token],
            client=self.client,
        )
        return value

    def _wait_for_fill(self, key: str, lock_key: str) -> Any:
        """Poll until the value appears (returned) or the fill lock is gone (_MISS)."""
        while True:
            time.sleep(CACHE_FILL_POLL_S)
            with self.client.pipeline(transaction=False) as pipe:
                pipe.get(keys.cache_key(key))
                pipe.exists(lock_key)
                raw, locked = pipe.execute()
            if raw is not None:
                return json.loads(raw)
            if not locked:
                return _MISS

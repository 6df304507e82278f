"""``RateLimitService``: fixed-window counters, checked in one atomic round trip.

Every counter has a TTL: one script increments it and sets the TTL together (a
crash between two commands could otherwise leave a counter that limits for
ever), and repairs a counter found without one. ``take_slot`` is a sliding window
shared by every process. :class:`RateLimitService` is the sync API,
:class:`AsyncRateLimitService` the asyncio one; both run :class:`RateLimitOps`' steps.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import redis
import redis.asyncio as aioredis

from csgoflip_jobs import keys
from csgoflip_jobs.helpers import scripts as lua_scripts
from csgoflip_jobs.helpers.arguments import require_key, require_positive
from csgoflip_jobs.helpers.redis_calls import (
    AsyncRunner,
    C,
    Command,
    RedisOps,
    ScriptCall,
    Steps,
    SyncRunner,
    operation,
)


@dataclass(frozen=True)
class RateLimitResult:
    """Outcome of one check: whether it is over the limit, and when the window resets."""

    limited: bool
    count: int
    remaining: int
    reset_after_s: int
    """Seconds until the window resets (for a Retry-After header)."""


class RateLimitOps(RedisOps[C]):
    """``ratelimit:<key>`` counters per fixed window, on the queue Redis (never evicted)."""

    @operation
    def check(self, key: str, limit: int, window_seconds: int) -> Steps[RateLimitResult]:
        """Count one attempt and say whether it is over ``limit`` in this window."""
        count, ttl = yield from self._hit(key, limit, window_seconds)
        return RateLimitResult(
            limited=count > limit,
            count=count,
            remaining=max(0, limit - count),
            reset_after_s=ttl,
        )

    @operation
    def is_rate_limited(self, key: str, limit: int, window_seconds: int) -> Steps[bool]:
        """Count one attempt; True when it is over ``limit``."""
        count, _ttl = yield from self._hit(key, limit, window_seconds)
        return count > limit

    def _hit(self, key: str, limit: int, window_seconds: int) -> Steps[tuple[int, int]]:
        require_key("key", key)
        require_positive("limit", limit)
        require_positive("window_seconds", window_seconds)
        count, ttl = yield ScriptCall(
            lua_scripts.RATE_LIMIT_HIT, [keys.rate_limit_key(key)], [window_seconds]
        )
        return int(count), int(ttl)

    @operation
    def take_slot(self, key: str, limit: int, window_ms: int) -> Steps[int]:
        """Sliding window: take one of ``limit`` slots per ``window_ms``; return 0 when
        taken, else the ms to wait before one frees. No burst at window edges: there
        are never more than ``limit`` slots in any ``window_ms``."""
        require_key("key", key)
        require_positive("limit", limit)
        require_positive("window_ms", window_ms)
        wait_ms = yield ScriptCall(
            lua_scripts.RATE_LIMIT_SLOT,
            [keys.rate_limit_key(key)],
            [limit, window_ms, os.urandom(8).hex()],
        )
        return int(wait_ms)

    @operation
    def get_remaining_attempts(self, key: str, limit: int) -> Steps[int]:
        """Attempts left in the current window, without counting one."""
        require_key("key", key)
        require_positive("limit", limit)
        used = yield Command("GET", keys.rate_limit_key(key))
        return max(0, limit - int(used or 0))

    @operation
    def get_reset_seconds(self, key: str) -> Steps[int]:
        """Seconds until the window resets; 0 when no window is open."""
        ttl = yield Command("TTL", keys.rate_limit_key(require_key("key", key)))
        return max(0, int(ttl))


class RateLimitService(RateLimitOps[redis.Redis], SyncRunner):
    """Rate limits for the web app and the tasks."""


class AsyncRateLimitService(RateLimitOps[aioredis.Redis], AsyncRunner):
    """:class:`RateLimitService` for asyncio: the same calls, awaited."""

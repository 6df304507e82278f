"""``RateLimitService``: fixed-window counters, checked in one atomic round trip.

Every counter has a TTL: one script increments it and sets the TTL together (a
crash between two commands could otherwise leave a counter that limits for
ever), and repairs a counter found without one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import redis

from csgoflip_jobs import keys
from csgoflip_jobs.helpers import scripts as lua_scripts
from csgoflip_jobs.helpers.arguments import require_key, require_positive
from csgoflip_jobs.helpers.connection import broker_client


@dataclass(frozen=True)
class RateLimitResult:
    """Outcome of one check: whether it is over the limit, and when the window resets."""

    limited: bool
    count: int
    remaining: int
    reset_after_s: int
    """Seconds until the window resets (for a Retry-After header)."""


class RateLimitService:
    """``ratelimit:<key>`` counters per fixed window."""

    def __init__(self, client: redis.Redis | None = None) -> None:
        self._client = client

    @property
    def client(self) -> redis.Redis:
        """The queue Redis (rate limits must never be evicted)."""
        return self._client or broker_client()

    def check(self, key: str, limit: int, window_seconds: int) -> RateLimitResult:
        """Count one attempt and say whether it is over ``limit`` in this window."""
        count, ttl = self._hit(key, limit, window_seconds)
        return RateLimitResult(
            limited=count > limit,
            count=count,
            remaining=max(0, limit - count),
            reset_after_s=ttl,
        )

    def _hit(self, key: str, limit: int, window_seconds: int) -> tuple[int, int]:
        require_key("key", key)
        require_positive("limit", limit)
        require_positive("window_seconds", window_seconds)
        count, ttl = lua_scripts.run_script(
            self.client, lua_scripts.RATE_LIMIT_HIT, [keys.rate_limit_key(key)], [window_seconds]
        )
        return int(count), int(ttl)

    def is_rate_limited(self, key: str, limit: int, window_seconds: int) -> bool:
        """Count one attempt; True when it is over ``limit``."""
        count, _ttl = self._hit(key, limit, window_seconds)
        return count > limit

    def take_slot(self, key: str, limit: int, window_ms: int) -> int:
        """Sliding window: take one of ``limit`` slots per ``window_ms``; return 0 when
        taken, else the ms to wait before one frees. No burst at window edges: there
        are never more than ``limit`` slots in any ``window_ms``."""
        require_key("key", key)
        require_positive("limit", limit)
        require_positive("window_ms", window_ms)
        wait_ms = lua_scripts.RATE_LIMIT_SLOT(
            keys=[keys.rate_limit_key(key)],
            args=[limit, window_ms, os.urandom(8).hex()],
            client=self.client,
        )
        return int(wait_ms)

    def get_remaining_attempts(self, key: str, limit: int) -> int:
        """Attempts left in the current window, without counting one."""
        require_key("key", key)
        require_positive("limit", limit)
        used = self.client.get(keys.rate_limit_key(key))
        return max(0, limit - int(used or 0))

    def get_reset_seconds(self, key: str) -> int:
        """Seconds until the window resets; 0 when no window is open."""
        ttl = int(self.client.ttl(keys.rate_limit_key(require_key("key", key))))
        return max(0, ttl)

"""Redis clients with the original stack's connection semantics.

ioredis ran with a 10 s connect timeout, 5 s command timeout, TCP keep-alive
after 30 s, TLS in production, and reconnected after ``min(n*50 ms, 2000 ms)``
giving up after 10 tries. :func:`make_client` builds a redis-py client that does
the same; :func:`broker_transport_options` hands the same values to kombu.
"""

from __future__ import annotations

import socket
from functools import cache
from typing import Any

import redis
from redis.backoff import AbstractBackoff
from redis.retry import Retry

from .settings import Settings, get_settings


class LinearCappedBackoff(AbstractBackoff):
    """Wait ``min(failures * step_ms, cap_ms)`` milliseconds: ioredis' retry strategy."""

    def __init__(self, step_ms: int, cap_ms: int) -> None:
        self._step_ms = step_ms
        self._cap_ms = cap_ms

    def reset(self) -> None:
        """Nothing to reset: the wait depends on the failure count alone."""

    def compute(self, failures: int) -> float:
        """Seconds to wait before retry number ``failures``."""
        return min(failures * self._step_ms, self._cap_ms) / 1000


def as_text(value: object) -> str:
    """A Redis reply as str, whether the client decodes responses or not."""
    return value.decode() if isinstance(value, bytes) else str(value)


def keepalive_options(settings: Settings) -> dict[int, int]:
    """TCP keep-alive timings (idle, interval) for the platforms that support them."""
    options: dict[int, int] = {}
    for name in ("TCP_KEEPIDLE", "TCP_KEEPINTVL"):
        if hasattr(socket, name):
            options[getattr(socket, name)] = settings.redis_keepalive_s
    return options


def connection_kwargs(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for redis-py carrying the original connection semantics."""
    return {
        "socket_connect_timeout": settings.redis_connect_timeout_s,
        "socket_timeout": settings.redis_command_timeout_s,
        "socket_keepalive": True,
        "socket_keepalive_options": keepalive_options(settings),
        "retry": Retry(
            LinearCappedBackoff(settings.redis_retry_step_ms, settings.redis_retry_cap_ms),
            settings.redis_max_retries,
        ),
        "retry_on_error": [redis.ConnectionError, redis.TimeoutError],
        "health_check_interval": 25,
    }


def make_client(url: str, settings: Settings | None = None, **overrides: Any) -> redis.Redis:
    """A new redis-py client for ``url`` with the platform's connection semantics."""
    kwargs = connection_kwargs(settings or get_settings())
    kwargs.update(overrides)
    client: redis.Redis = redis.Redis.from_url(url, **kwargs)
    return client


def make_bounded_client(url: str, connections: int, **overrides: Any) -> redis.Redis:
    """A client whose pool never opens more than ``connections``: callers wait for a free one."""
    kwargs = connection_kwargs(get_settings())
    kwargs.update(overrides)
    pool = redis.BlockingConnectionPool.from_url(
        url, max_connections=connections, timeout=kwargs["socket_timeout"], **kwargs
    )
    return redis.Redis(connection_pool=pool)


@cache
def broker_client() -> redis.Redis:
    """The process-wide client of the queue Redis (thread-safe, pooled)."""
    return make_client(get_settings().broker_url)


def broker_transport_options(settings: Settings) -> dict[str, Any]:
    """kombu Redis transport options with the same socket settings as :func:`make_client`
    (kombu reconnects by itself, so redis-py's retry options stay out)."""
    shared = (
        "socket_connect_timeout",
        "socket_timeout",
        "socket_keepalive",
        "socket_keepalive_options",
        "health_check_interval",
    )
    kwargs = connection_kwargs(settings)
    return {name: kwargs[name] for name in shared}

"""Redis clients with the platform's connection semantics.

Every client gives up on a connect after REDIS_CONNECT_TIMEOUT_S (10 s), on a
command after REDIS_COMMAND_TIMEOUT_S (5 s), keeps TCP alive after 30 s, speaks
TLS in production, and retries after ``min(n * 50 ms, 2000 ms)`` at most 10 times,
so one call is bounded (:func:`make_client`); kombu gets the same socket settings
(:func:`broker_transport_options`). :func:`broker_errors` turns a Redis that
cannot take a job into a :class:`~csgoflip_jobs.helpers.errors.BrokerError` that
says why.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any, TypeVar

import redis
from kombu.exceptions import OperationalError
from redis.backoff import AbstractBackoff, NoBackoff
from redis.retry import Retry

from csgoflip_jobs.helpers.errors import (
    BrokerAuthenticationError,
    BrokerError,
    BrokerOutOfMemoryError,
    BrokerTimeoutError,
    BrokerUnavailableError,
    WrongKeyTypeError,
)
from csgoflip_jobs.helpers.sentinel import is_sentinel_url, master_client
from csgoflip_jobs.setting_values import redacted_url as redacted_url  # re-exported
from csgoflip_jobs.settings import Settings, get_settings

SCAN_BATCH = 500
"""Keys per SCAN step and per UNLINK when invalidating a pattern."""

T = TypeVar("T")

_retrying = threading.local()


class LinearCappedBackoff(AbstractBackoff):
    """Wait ``min(failures * step_ms, cap_ms)`` milliseconds before the next try."""

    def __init__(self, step_ms: int, cap_ms: int) -> None:
        self._step_ms = step_ms
        self._cap_ms = cap_ms

    def reset(self) -> None:
        """Nothing to reset: the wait depends on the failure count alone."""

    def compute(self, failures: int) -> float:
        """Seconds to wait before retry number ``failures``."""
        return min(failures * self._step_ms, self._cap_ms) / 1000


class BoundedRetry(Retry):
    """redis-py's Retry, bounded by the settings: at most ``retries + 1`` tries per call.

    redis-py nests retries (a retried reconnect sends a health-check PING that is
    retried again), so against a paused server one call took ``(retries + 1) ** 2``
    timeouts, about ten minutes with the defaults. Here a retry inside another tries
    once, and a refused password or a master name no sentinel knows is never retried:
    waiting does not change them.
    """

    def call_with_retry(
        self,
        do: Callable[[], T],
        fail: Callable[[Exception], Any] | Callable[[Exception, int], Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        """Call ``do``, retrying as redis-py would unless nested or refused a password."""
        retryable = bounded_retryable(is_retryable)
        if getattr(_retrying, "active", False):
            once = Retry(NoBackoff(), 0, self._supported_errors)
            return once.call_with_retry(do, fail, retryable, with_failure_count)
        _retrying.active = True
        try:
            return super().call_with_retry(do, fail, retryable, with_failure_count)
        finally:
            _retrying.active = False


def bounded_retryable(
    is_retryable: Callable[[Exception], bool] | None,
) -> Callable[[Exception], bool]:
    """redis-py's retry decision, except that a refused password, or an error that says
    it is not ``retryable`` (a master name no sentinel knows), is never retried: waiting
    does not change them (shared by the sync and asyncio retries)."""

    def retryable(error: Exception) -> bool:
        if isinstance(error, redis.AuthenticationError) or not getattr(error, "retryable", True):
            return False
        return is_retryable is None or is_retryable(error)

    return retryable


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
    """Keyword arguments for redis-py carrying the platform's connection semantics."""
    return {
        "socket_connect_timeout": settings.redis_connect_timeout_s,
        "socket_timeout": settings.redis_command_timeout_s,
        "socket_keepalive": True,
        "socket_keepalive_options": keepalive_options(settings),
        "retry": BoundedRetry(
            LinearCappedBackoff(settings.redis_retry_step_ms, settings.redis_retry_cap_ms),
            settings.redis_max_retries,
        ),
        "retry_on_error": [redis.ConnectionError, redis.TimeoutError],
        "health_check_interval": 25,
    }


def make_client(url: str, settings: Settings | None = None, **overrides: Any) -> redis.Redis:
    """A new redis-py client for ``url`` with the platform's connection semantics (for a
    Sentinel URL, a client of the master the sentinels name)."""
    settings = settings or get_settings()
    kwargs = connection_kwargs(settings)
    kwargs.update(overrides)
    if is_sentinel_url(url):
        return master_client(url, settings, kwargs)
    client: redis.Redis = redis.Redis.from_url(url, **kwargs)
    return client


def make_bounded_client(url: str, connections: int, **overrides: Any) -> redis.Redis:
    """A client whose pool never opens more than ``connections``: callers wait for a free one."""
    kwargs = connection_kwargs(get_settings())
    kwargs.update(overrides)
    if is_sentinel_url(url):
        return master_client(url, get_settings(), kwargs, max_connections=connections)
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


def broker_error(exc: BaseException, url: str) -> BrokerError | None:
    """The BrokerError for a failure to reach or write the Redis at ``url`` (a redis-py
    error, or kombu's wrapping of one); None for any other error."""
    cause = exc.__cause__ if isinstance(exc, OperationalError) and exc.__cause__ else exc
    where = f"the queue Redis at {redacted_url(url)}"
    if isinstance(cause, redis.AuthenticationError):
        return BrokerAuthenticationError(f"{where} refused the password in the URL: {cause}")
    if isinstance(cause, redis.OutOfMemoryError):
        return BrokerOutOfMemoryError(
            f"{where} is out of memory (maxmemory reached, noeviction) and refused the job; "
            f"each job is stored whole or not at all: {cause}"
        )
    if isinstance(cause, redis.TimeoutError):
        # The request may sit in the server's socket buffer and run when it resumes.
        return BrokerTimeoutError(
            f"{where} did not answer in time ({cause}); it may still store the job when "
            "it resumes: enqueue it again with the same job_id, which is stored only once"
        )
    if isinstance(cause, redis.ConnectionError | OperationalError):
        return BrokerUnavailableError(f"{where} could not be reached: {cause}")
    if isinstance(cause, Exception):
        return wrong_key_type(cause, ())  # e.g. kombu's own pipeline: Redis names the key
    return None


WRONG_TYPE_KEYS_SHOWN = 12
"""Most keys a WrongKeyTypeError names (a script may touch dozens)."""


def wrong_key_type(error: Exception, keys: Sequence[Any]) -> WrongKeyTypeError | None:
    """For Redis's WRONGTYPE answer to a call of ``keys``, the error naming them (a
    pipeline's answer names its command and key itself)."""
    if not isinstance(error, redis.ResponseError) or "WRONGTYPE" not in str(error):
        return None
    named = ", ".join(as_text(key) for key in keys[:WRONG_TYPE_KEYS_SHOWN])
    if len(keys) > WRONG_TYPE_KEYS_SHOWN:
        named += f" and {len(keys) - WRONG_TYPE_KEYS_SHOWN} more"
    return WrongKeyTypeError(
        "Redis refused the call: a key it uses holds another kind of value than the "
        "platform keeps there (written by something else?); "
        f"{f'its keys: {named}; ' if named else ''}Redis said: {error}"
    )


@contextmanager
def broker_errors(url: str) -> Iterator[None]:
    """Within this block, a Redis that cannot be reached, refuses the password or is out
    of memory raises the matching BrokerError (chained to the original)."""
    try:
        yield
    except (redis.RedisError, OperationalError) as exc:
        error = broker_error(exc, url)
        if error is None:
            raise
        raise error from exc

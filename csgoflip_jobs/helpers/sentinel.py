"""Clients of the queue Redis through Redis Sentinel (REDIS_SENTINELS).

With Sentinel the queue Redis is whichever server the Sentinels name as the master
of REDIS_SENTINEL_MASTER. Every client made here asks them on each (re)connect, so
after a failover its next connection goes to the promoted replica; a connection still
open to a demoted master is dropped at its first READONLY reply (redis-py's
``SentinelManagedConnection``) and the call is retried on the new master.

Each sentinel is asked once per discovery, within REDIS_CONNECT_TIMEOUT_S and
REDIS_COMMAND_TIMEOUT_S, the reachable ones first. When no master is found the error
names the setting to look at: :class:`SentinelsUnreachableError` (REDIS_SENTINELS:
no sentinel answered), :class:`UnknownMasterError` (REDIS_SENTINEL_MASTER: the
sentinels monitor no such name; never retried) or :class:`MasterDownError` (a
failover is under way). All three are ``redis.ConnectionError`` s, so every caller's
handling of an unreachable Redis applies.

A Sentinel URL is kombu's and Celery's form, ``sentinel://[:password@]host:port/db``
per sentinel joined by ``;`` (:attr:`Settings.broker_url`); the password and db are
the master's, the master's name and the Sentinels' own password come from the settings.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio as aioredis
import redis.asyncio.retry as async_retry
import redis.asyncio.sentinel as async_sentinel
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool

from csgoflip_jobs.settings import SENTINEL_DEFAULT_PORT, Settings, revealed

SENTINEL_URL_PREFIX = "sentinel://"


class SentinelsUnreachableError(MasterNotFoundError):
    """No sentinel of REDIS_SENTINELS answered (down, unreachable, or refused the password)."""


class UnknownMasterError(MasterNotFoundError):
    """The sentinels answered but monitor no master named REDIS_SENTINEL_MASTER."""

    retryable = False
    """Waiting does not teach the sentinels a name: callers give up at once."""


class MasterDownError(MasterNotFoundError):
    """The sentinels see the master down and have not promoted a replica yet."""


def is_sentinel_url(url: str) -> bool:
    """True for a Sentinel group URL (``sentinel://...``)."""
    return url.startswith(SENTINEL_URL_PREFIX)


@dataclass(frozen=True)
class SentinelGroup:
    """Where to ask for the queue Redis, and how to log in to the master found."""

    nodes: list[tuple[str, int]]
    master: str
    credentials: dict[str, Any] = field(default_factory=dict)
    """``db`` and, when the URL has them, ``username`` and ``password`` of the master."""


def sentinel_group(url: str, settings: Settings) -> SentinelGroup:
    """The group a Sentinel URL names (the master's name from REDIS_SENTINEL_MASTER)."""
    chunks = [urlsplit(chunk) for chunk in url.split(";") if chunk]
    nodes = [(str(c.hostname), c.port or SENTINEL_DEFAULT_PORT) for c in chunks]
    first = chunks[0]
    credentials: dict[str, Any] = {"db": int(first.path.strip("/") or 0)}
    if first.username:
        credentials["username"] = unquote(first.username)
    if first.password:
        credentials["password"] = unquote(first.password)
    return SentinelGroup(nodes, settings.redis_sentinel_master or "", credentials)


def tls_options(settings: Settings) -> dict[str, Any]:
    """The ``ssl_*`` options of a verified TLS connection (empty without Sentinel TLS),
    as kombu's ``broker_use_ssl`` and Celery's ``redis_backend_use_ssl`` take them."""
    if not settings.sentinel_tls:
        return {}
    options: dict[str, Any] = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    if settings.redis_tls_ca_file is not None:
        options["ssl_ca_certs"] = str(settings.redis_tls_ca_file)
    return options


def sentinel_kwargs(settings: Settings, *, asynchronous: bool = False) -> dict[str, Any]:
    """redis-py options of the connections to the sentinels themselves: the platform's
    timeouts, the Sentinels' password and TLS, and no retry (the next sentinel is the
    retry; a sentinel retried with backoff would hold up the discovery)."""
    retry = async_retry.Retry(NoBackoff(), 0) if asynchronous else Retry(NoBackoff(), 0)
    kwargs: dict[str, Any] = {
        "socket_connect_timeout": settings.redis_connect_timeout_s,
        "socket_timeout": settings.redis_command_timeout_s,
        "socket_keepalive": True,
        "retry": retry,
    }
    if settings.redis_sentinel_password:
        kwargs["password"] = revealed(settings.redis_sentinel_password)
    if settings.sentinel_tls:
        kwargs.update(ssl=True, **tls_options(settings))
    return kwargs


def transport_options(settings: Settings) -> dict[str, Any]:
    """What kombu's broker, Celery's result backend and Flower need beside a Sentinel
    URL: the master's name and how to reach the sentinels."""
    return {
        "master_name": settings.redis_sentinel_master,
        "sentinel_kwargs": sentinel_kwargs(settings),
    }


@dataclass
class _Findings:
    """What the sentinels said while no master was found, to say why in one line."""

    unreachable: list[str] = field(default_factory=list)
    monitored: set[str] = field(default_factory=set)
    seen_down: bool = False
    refused_password: bool = False

    def failed(self, node: Any, exc: Exception) -> None:
        kwargs = node.connection_pool.connection_kwargs
        self.unreachable.append(f"{kwargs.get('host')}:{kwargs.get('port')}: {exc}")
        self.refused_password |= isinstance(exc, redis.AuthenticationError)

    def read(self, masters: Any, name: str, manager: Any) -> tuple[str, int] | None:
        """The master's address when a sentinel vouches for it; else note why not."""
        self.monitored.update(masters)
        state = masters.get(name)
        if state is None:
            return None
        if manager.check_master_state(state, name):
            return state["ip"], int(state["port"])
        self.seen_down = True
        return None

    def error(self, name: str, nodes: int) -> MasterNotFoundError:
        where = f"({'; '.join(self.unreachable)})" if self.unreachable else ""
        if self.seen_down:
            return MasterDownError(
                f"REDIS_SENTINEL_MASTER {name!r}: the sentinels see the master down and have "
                "not promoted a replica yet (a failover is under way)"
            )
        if len(self.unreachable) == nodes:
            hint = (
                "REDIS_SENTINEL_PASSWORD: the sentinels refused it"
                if self.refused_password
                else "REDIS_SENTINELS: no sentinel answered"
            )
            return SentinelsUnreachableError(f"{hint} {where}".strip())
        known = ", ".join(sorted(self.monitored)) or "none"
        return UnknownMasterError(
            f"REDIS_SENTINEL_MASTER: no sentinel of REDIS_SENTINELS monitors a master named "
            f"{name!r} (they monitor: {known}) {where}".strip()
        )


class ExplainingSentinel(Sentinel):
    """redis-py's Sentinel, whose failure to find the master says which setting is wrong."""

    def discover_master(self, service_name: str) -> tuple[str, int]:
        """The master's (host, port); the sentinel that answered is asked first next time."""
        findings = _Findings()
        for position, node in enumerate(self.sentinels):
            try:
                masters = node.sentinel_masters()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                findings.failed(node, exc)
                continue
            address = findings.read(masters, service_name, self)
            if address is not None:
                self.sentinels[0], self.sentinels[position] = node, self.sentinels[0]
                return address
        raise findings.error(service_name, len(self.sentinels))


class AsyncExplainingSentinel(async_sentinel.Sentinel):
    """The asyncio Sentinel with the same errors as :class:`ExplainingSentinel`."""

    async def discover_master(self, service_name: str) -> tuple[str, int]:
        """The master's (host, port); the sentinel that answered is asked first next time."""
        findings = _Findings()
        for position, node in enumerate(self.sentinels):
            try:
                masters = await node.sentinel_masters()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                findings.failed(node, exc)
                continue
            address = findings.read(masters, service_name, self)
            if address is not None:
                self.sentinels[0], self.sentinels[position] = node, self.sentinels[0]
                return address
        raise findings.error(service_name, len(self.sentinels))


def explaining_sentinel(
    nodes: list[tuple[str, int]], sentinel_kwargs: dict[str, Any] | None, **kwargs: Any
) -> Any:
    """An :class:`ExplainingSentinel` (typed: redis-py's Sentinel is not); ``kwargs`` are
    Sentinel's other arguments and the master connections' options."""
    return cast(Any, ExplainingSentinel)(nodes, sentinel_kwargs=sentinel_kwargs, **kwargs)


class BoundedSentinelPool(SentinelConnectionPool, redis.BlockingConnectionPool):
    """A Sentinel-managed pool that never opens more than ``max_connections``:
    callers wait up to ``timeout`` seconds for a free one, as with
    ``redis.BlockingConnectionPool``."""


def master_client(
    url: str, settings: Settings, kwargs: dict[str, Any], *, max_connections: int | None = None
) -> redis.Redis:
    """A client of the master the sentinels of ``url`` name, with the connection
    options ``kwargs`` (bounded to ``max_connections`` when given)."""
    group = sentinel_group(url, settings)
    options = {**kwargs, **group.credentials, **_master_tls(settings)}
    manager = explaining_sentinel(group.nodes, sentinel_kwargs(settings), **options)
    if max_connections is None:
        client: redis.Redis = manager.master_for(group.master)
        return client
    bounded: redis.Redis = manager.master_for(
        group.master,
        connection_pool_class=BoundedSentinelPool,
        max_connections=max_connections,
        timeout=kwargs["socket_timeout"],
    )
    return bounded


def async_master_client(url: str, settings: Settings, **kwargs: Any) -> aioredis.Redis:
    """An asyncio client of the master the sentinels of ``url`` name."""
    group = sentinel_group(url, settings)
    options = {**kwargs, **group.credentials, **_master_tls(settings)}
    manager: Any = cast(Any, AsyncExplainingSentinel)(
        group.nodes, sentinel_kwargs=sentinel_kwargs(settings, asynchronous=True), **options
    )
    client: aioredis.Redis = manager.master_for(group.master)
    return client


def _master_tls(settings: Settings) -> dict[str, Any]:
    # SentinelConnectionPool picks its TLS connection class from ``ssl``.
    return {"ssl": True, **tls_options(settings)} if settings.sentinel_tls else {}

"""The platform's broker transport and result backend through Redis Sentinel.

With REDIS_SENTINELS set the broker URL is ``sentinel://host:port/db;...`` (see
:attr:`csgoflip_jobs.settings.Settings.broker_url`). :class:`SentinelChannel` is the
platform's own channel (atomic ``DELIVER``, ``ENQUEUE``) finding the master the way
kombu's ``SentinelChannel`` does for its plain channel; :class:`RetainingSentinelBackend`
is the retaining result backend (``FINISH``) on Celery's ``SentinelBackend``.

Both ask the sentinels through :class:`~csgoflip_jobs.helpers.sentinel.ExplainingSentinel`,
so a wrong REDIS_SENTINEL_MASTER or no reachable sentinel is logged naming the setting,
and with the platform's timeouts on the sentinel connections (Celery would open them
with none, so one unreachable sentinel could hold a worker for minutes).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import redis
from celery.backends.redis import SentinelBackend
from kombu.transport import redis as kombu_redis

from csgoflip_jobs.engine.celery_ext.result_backend import RetainingRedisBackend
from csgoflip_jobs.engine.celery_ext.transport import Channel, Transport
from csgoflip_jobs.errors import ConfigError
from csgoflip_jobs.helpers.sentinel import explaining_sentinel
from csgoflip_jobs.settings import SENTINEL_DEFAULT_PORT


class SentinelChannel(Channel, kombu_redis.SentinelChannel):  # type: ignore[misc]
    """The platform's Redis channel on the master the sentinels name.

    Every (re)connection asks the sentinels, so after a failover the consumer's next
    connection (Celery re-establishes it by itself) goes to the promoted replica.
    """

    def _sentinel_managed_pool(self, asynchronous: bool = False) -> Any:
        master_name = getattr(self, "master_name", None)
        if not master_name:
            raise ConfigError("REDIS_SENTINEL_MASTER: the broker needs the master's name")
        params = self._connparams(asynchronous)
        params.pop("host", None)
        params.pop("port", None)
        manager = explaining_sentinel(
            _sentinel_nodes(self.connection.client.alt),
            getattr(self, "sentinel_kwargs", None),
            min_other_sentinels=getattr(self, "min_other_sentinels", 0),
            **params,
        )
        # kombu closes the connections to the sentinels through these (kombu#1108).
        if asynchronous:
            self._async_sentinel_manager = manager
        else:
            self._sentinel_manager = manager
        credentials = {k: params[k] for k in ("username", "password") if k in params}
        return manager.master_for(master_name, redis.Redis, **credentials).connection_pool


class SentinelTransport(Transport, kombu_redis.SentinelTransport):  # type: ignore[misc]
    """The platform's transport for ``sentinel://`` broker URLs (see install_transport)."""

    Channel = SentinelChannel


class RetainingSentinelBackend(RetainingRedisBackend, SentinelBackend):  # type: ignore[misc]
    """The retaining result backend on the master the sentinels name."""

    def _get_sentinel_instance(self, **params: Any) -> Any:
        connparams = params.copy()
        hosts = connparams.pop("hosts")
        options = self._transport_options
        return explaining_sentinel(
            [(host["host"], host["port"]) for host in hosts],
            options.get("sentinel_kwargs"),
            min_other_sentinels=options.get("min_other_sentinels", 0),
            **connparams,
        )


def _sentinel_nodes(urls: list[str]) -> list[tuple[str, int]]:
    parts = [urlsplit(url) for url in urls]
    return [
        (str(p.hostname), p.port or SENTINEL_DEFAULT_PORT) for p in parts if p.scheme == "sentinel"
    ]

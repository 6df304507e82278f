"""Production readiness of the queue Redis (``csgoflip-jobs check``); the
high-availability findings are :mod:`csgoflip_jobs.ops.availability`."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import redis

from csgoflip_jobs.helpers.connection import broker_error, make_client, redacted_url
from csgoflip_jobs.ops.availability import availability_checks
from csgoflip_jobs.settings import Settings, get_settings


@dataclass(frozen=True)
class Check:
    """One finding: ``ok`` False means unsafe for production (only a warning when
    ``advisory``); None means unknown."""

    name: str
    ok: bool | None
    detail: str
    advisory: bool = False


def run_checks(settings: Settings | None = None, client: redis.Redis | None = None) -> list[Check]:
    """Connection, eviction policy, persistence, password and TLS of the queue Redis,
    plus Flower auth, then Sentinel or replicas, durable enqueue and Redlock's masters.
    A Redis that cannot be reached (or refuses the password) is unsafe, and what only
    the server can tell is then unknown."""
    settings = settings or get_settings()
    client = client or make_client(settings.broker_url)
    url = urlsplit(settings.broker_url)
    connection = _connection(client, settings.broker_url)
    config = _config(client, "maxmemory-policy", "appendonly", "save") if connection.ok else {}
    unread = "unreadable (CONFIG GET refused)" if connection.ok else "not checked (no connection)"
    policy = config.get("maxmemory-policy")
    persisted = (
        None if not config else (config.get("appendonly") == "yes" or bool(config.get("save")))
    )
    tls = settings.sentinel_tls if settings.uses_sentinel else url.scheme == "rediss"
    available = availability_checks(settings, client) if connection.ok else []
    return [
        connection,
        Check(
            "eviction policy",
            None if policy is None else policy == "noeviction",
            f"maxmemory-policy {policy or unread}; queues, locks and sessions need noeviction",
        ),
        Check(
            "persistence",
            persisted,
            "appendonly={appendonly} save={save!r}".format(**config) if config else unread,
        ),
        Check(
            "password",
            bool(url.password),
            "the broker URL carries a password"
            if url.password
            else "the broker URL has no password (requirepass)",
        ),
        Check("TLS", tls, _tls_detail(settings, url.scheme)),
        Check(
            "Flower credentials",
            bool(settings.flower_user and settings.flower_password),
            "FLOWER_USER and FLOWER_PASSWORD "
            + ("set" if settings.flower_user and settings.flower_password else "missing"),
        ),
        *(Check(f.name, f.ok, f.detail, f.advisory) for f in available),
    ]


def _tls_detail(settings: Settings, scheme: str) -> str:
    if settings.uses_sentinel:
        state = "on" if settings.sentinel_tls else "off (REDIS_SENTINEL_TLS)"
        return f"TLS to the sentinels and the master {state}"
    return f"broker URL scheme {scheme}://"


def _connection(client: redis.Redis, url: str) -> Check:
    try:
        client.ping()
    except redis.RedisError as exc:
        error = broker_error(exc, url)
        if error is None:
            raise
        return Check("connection", False, str(error))
    return Check("connection", True, f"{redacted_url(url)} answers")


def _config(client: redis.Redis, *names: str) -> dict[str, str]:
    try:
        found: dict[str, str] = {}
        for name in names:
            found.update({str(k): str(v) for k, v in client.config_get(name).items()})
        return found
    except redis.ResponseError:
        return {}

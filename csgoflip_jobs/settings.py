"""Every setting of the platform, read once from the environment and typed.

Nothing else in the project reads ``os.environ``. Call :func:`get_settings`;
a bad value raises :class:`~csgoflip_jobs.errors.ConfigError` whose message is
one line naming the variable. Where SECRETS_DIR exists (Docker and Compose secrets'
``/run/secrets``), a file there named like a setting (``redis_password``) is its value,
so passwords need not be in any environment or command line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from pydantic import Field, FilePath, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from csgoflip_jobs.errors import ConfigError
from csgoflip_jobs.setting_values import (
    SENTINEL_DEFAULT_PORT,
    check_redis_url,
    force_tls,
    netloc,
    parse_rate,
    parse_sentinels,
    redacted_url,
    with_certificate_checks,
    with_password,
)

__all__ = ["SENTINEL_DEFAULT_PORT", "Settings", "get_settings", "load_settings", "revealed"]

_URL_FIELDS = frozenset({"redis_url", "cache_redis_url", "redlock_urls", "database_url"})
"""Settings holding URLs that may carry a password: masked in the settings' repr."""

log = logging.getLogger(__name__)


class Settings(BaseSettings):
    """Typed view of the environment. Field names are the variable names, lower-cased."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    app_env: Literal["development", "test", "production"] = "development"

    celery_app: str = "csgoflip_jobs.celery_app:app"
    """The Celery app JobQueue uses when given none (``module:attribute``, as ``celery -A``)."""

    redis_url: str | None = None
    redis_host: str = "localhost"
    redis_port: int = Field(6379, ge=1, le=65535)
    redis_password: SecretStr | None = None
    redis_db: int = Field(0, ge=0, le=15)
    pubsub_namespace: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    """Prefix of the live-notification channels (``<namespace>:notifications:...``); by
    default none on database 0, ``db<N>:`` on database N (see ``channel_namespace``)."""
    cache_redis_url: str | None = None
    cache_redis_password: SecretStr | None = None
    """Password of the cache Redis, for a CACHE_REDIS_URL that carries none."""
    redlock_urls: str | None = None
    redis_tls_ca_file: FilePath | None = None
    """PEM file of the CA that signed the Redis servers' certificates (rediss:// URLs);
    without it they are verified against the system's CAs."""

    # Connection bounds (units in the names): every Redis call gives up in bounded time.
    redis_connect_timeout_s: float = Field(10.0, gt=0)
    redis_command_timeout_s: float = Field(5.0, gt=0)
    redis_keepalive_s: int = Field(30, gt=0)
    redis_retry_step_ms: int = Field(50, gt=0)
    redis_retry_cap_ms: int = Field(2000, gt=0)
    redis_max_retries: int = Field(10, ge=0)

    # High availability (docs/reliability.md, README "High availability").
    redis_sentinels: str | None = None
    """Comma list of ``host:port`` of the Sentinels watching the queue Redis. When set,
    every client of the queue Redis asks them for the master, and REDIS_URL,
    REDIS_HOST and REDIS_PORT are ignored (REDIS_PASSWORD and REDIS_DB still apply)."""
    redis_sentinel_master: str | None = Field(None, validate_default=True)
    """The name the Sentinels monitor the queue Redis under (required with them)."""
    redis_sentinel_password: SecretStr | None = None
    """The Sentinels' own password (``requirepass`` in sentinel.conf), if any."""
    redis_sentinel_tls: bool = False
    """TLS to the Sentinels and to the master they name (always on in production)."""
    redis_min_replicas_ack: int = Field(0, ge=0)
    """0: an enqueue returns once the master holds the job. N >= 1: only once N replicas
    hold it too (Redis WAIT), so a failover cannot lose an accepted job."""
    redis_replica_ack_timeout_ms: int = Field(1000, gt=0, validate_default=True)
    """How long an enqueue waits for REDIS_MIN_REPLICAS_ACK replicas, in milliseconds."""

    database_url: str = "sqlite:///csgoflip_jobs.sqlite3"
    database_password: SecretStr | None = None
    """Password for a DATABASE_URL that carries none (``database_dsn`` holds both)."""

    payout_gateway: Literal["sandbox", "http"] = "sandbox"
    payout_url: str | None = None
    """Where the ``http`` gateway POSTs payouts."""
    payout_timeout_s: float = Field(10.0, gt=0)

    job_max_bytes: int = Field(1024 * 1024, gt=0)
    """Largest JSON-encoded job data accepted by ``JobQueue.add``, in bytes."""

    visibility_timeout_s: int = Field(30, ge=5)
    """A job held by a worker that stopped heart-beating is redelivered after this many seconds."""

    max_stalled_count: int = Field(1, ge=0)
    """A job whose worker dies while running it runs again this many times, then fails."""

    events_max_len: int = Field(10_000, ge=1)
    """Events kept per queue in its stream (about: Redis trims in whole nodes)."""

    metrics_max_minutes: int = Field(1440, ge=2)
    """Minutes of completed and failed counts kept per queue."""

    job_logs_max: int = Field(1000, ge=1)
    """Lines of ``self.log`` kept per job (the newest)."""
    job_log_max_bytes: int = Field(1024 * 1024, ge=1024)
    """Bytes of ``self.log`` lines kept per job (the newest lines that fit)."""
    progress_max_bytes: int = Field(64 * 1024, ge=64)
    """Largest ``self.update_progress`` value, as JSON."""
    session_metadata_max_bytes: int = Field(4096, ge=64)
    """Largest session metadata, as JSON."""
    notification_max_bytes: int = Field(16 * 1024, ge=64)
    """Largest notification payload, as JSON."""

    worker_prefetch_multiplier: int = Field(1, ge=1)
    """Messages a worker holds per pool process. 1 keeps slow jobs (payments) from
    queueing behind each other; 4 moved 24 % more short jobs (docs/benchmarks.md)."""

    smtp_host: str = "localhost"
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    email_from: str = "CSGOFlip <no-reply@csgoflip.local>"
    smtp_timeout_s: float = Field(10.0, gt=0)

    email_rate_limit: str = "10/s"
    """Emails per second (``N/s``) or minute (``N/m``) across all workers."""

    stats_snapshot_interval_s: int = Field(60, ge=1)
    """How often beat stores a Redis stats snapshot (for trends)."""

    gateway_client_queue_size: int = Field(100, ge=1)
    """Messages buffered per WebSocket client; beyond this the oldest are dropped."""
    websocket_origins: str | None = None
    """Comma list of Origins (``https://app.example``) whose pages may open the gateway's
    and the example app's WebSockets and POST to them; unset: each page's own origin."""
    websocket_max_per_user: int = Field(10, ge=1)
    """Live WebSockets one user may hold per gateway (or web app) process."""
    websocket_max_message_bytes: int = Field(4096, ge=256, le=1024 * 1024)
    """Largest message a client may send a WebSocket; a larger one closes it (1009)."""
    trusted_proxies: str | None = None
    """Comma list of proxy addresses whose X-Forwarded-For / -Proto the web servers
    believe (uvicorn's forwarded_allow_ips); unset: none, the peer is the client."""

    flower_user: str | None = None
    flower_password: SecretStr | None = None
    """FLOWER_USER may do everything in Flower; FLOWER_VIEWER_USER only read."""
    flower_viewer_user: str | None = None
    flower_viewer_password: SecretStr | None = None

    flower_max_tasks: int = Field(10_000, ge=1)
    """Tasks Flower keeps in memory from the events it saw (the oldest are dropped);
    the jobs themselves are read from Redis on the Jobs pages."""

    flower_purge_offline_workers_s: int = Field(3600, ge=1)
    """Seconds after which Flower stops listing a worker that went offline (and drops
    its Prometheus series)."""

    # Tracing and logs (README "Tracing and logs"); the OpenTelemetry SDK reads the rest
    # of the standard OTEL_* variables itself.
    otel_traces_exporter: str | None = None
    otel_exporter_otlp_endpoint: str | None = None
    otel_exporter_otlp_traces_endpoint: str | None = None
    otel_service_name: str | None = None
    log_format: Literal["text", "json"] = "text"
    """``json``: one JSON object per log line (job id, queue and trace id as fields)."""

    @field_validator("redis_url", "cache_redis_url", "redlock_urls")
    @classmethod
    def _check_urls(cls, value: str | None) -> str | None:
        for url in (value or "").split(","):
            if url.strip():
                check_redis_url(url.strip())
        return value

    @field_validator("redis_sentinels")
    @classmethod
    def _check_sentinels(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None  # set but empty (e.g. Compose's ${REDIS_SENTINELS:-}): no Sentinel
        parse_sentinels(value)
        return value

    @field_validator("redis_sentinel_master")
    @classmethod
    def _check_master(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and (not value.strip() or any(c.isspace() for c in value)):
            raise ValueError("must be the master's name, without spaces")
        if not value and info.data.get("redis_sentinels"):
            raise ValueError(
                "must be set with REDIS_SENTINELS: the name the sentinels monitor "
                "the queue Redis under (sentinel monitor <name> ...)"
            )
        return value

    @field_validator("redis_replica_ack_timeout_ms")
    @classmethod
    def _check_ack_timeout(cls, value: int, info: ValidationInfo) -> int:
        command_ms = info.data.get("redis_command_timeout_s", 0) * 1000
        if info.data.get("redis_min_replicas_ack") and value >= command_ms:
            # WAIT blocks the connection: past the command timeout the client would
            # give up first and report Redis as unresponsive instead.
            raise ValueError(
                f"must be below REDIS_COMMAND_TIMEOUT_S ({command_ms:.0f} ms), or the "
                "client gives up before Redis answers WAIT"
            )
        return value

    @field_validator("flower_password", "flower_viewer_password")
    @classmethod
    def _check_flower_password(cls, value: SecretStr | None) -> SecretStr | None:
        secret = revealed(value)
        if not secret:
            return None  # set but empty (e.g. Compose's ${FLOWER_PASSWORD:-}): none
        if not (secret.isascii() and secret.isprintable()):
            # Browsers encode other characters in basic auth differently from each other.
            raise ValueError("must be printable ASCII characters")
        return value

    @field_validator("email_rate_limit")
    @classmethod
    def _check_rate(cls, value: str) -> str:
        parse_rate(value)
        return value

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # Passwords are SecretStr (masked); URLs keep their shape, not their password.
        for name, value in super().__repr_args__():
            masked = name in _URL_FIELDS and isinstance(value, str)
            yield name, ",".join(map(redacted_url, value.split(","))) if masked else value

    @property
    def email_rate(self) -> tuple[int, int]:
        """EMAIL_RATE_LIMIT as (emails, window in ms)."""
        return parse_rate(self.email_rate_limit)

    @property
    def is_production(self) -> bool:
        """True when APP_ENV=production: TLS to Redis and the production checks."""
        return self.app_env == "production"

    @property
    def uses_sentinel(self) -> bool:
        """True when the queue Redis is found through REDIS_SENTINELS."""
        return bool(self.redis_sentinels)

    @property
    def sentinel_nodes(self) -> list[tuple[str, int]]:
        """REDIS_SENTINELS as (host, port) pairs, in the order given; empty without them."""
        return parse_sentinels(self.redis_sentinels) if self.redis_sentinels else []

    @property
    def sentinel_tls(self) -> bool:
        """TLS to the Sentinels and the master they name: REDIS_SENTINEL_TLS or production."""
        return self.redis_sentinel_tls or self.is_production

    @property
    def ignored_for_sentinel(self) -> list[str]:
        """The variables that were set but do not apply because REDIS_SENTINELS is set."""
        if not self.uses_sentinel:
            return []
        names = ("redis_url", "redis_host", "redis_port")
        return [name.upper() for name in names if name in self.model_fields_set]

    @property
    def broker_url(self) -> str:
        """The queue Redis: with REDIS_SENTINELS, kombu's and Celery's form of a Sentinel
        group (``sentinel://[:password@]host:port/db`` per sentinel, joined by ``;``;
        the master's name is REDIS_SENTINEL_MASTER); else REDIS_URL, else built from
        REDIS_HOST/PORT/PASSWORD/DB."""
        if self.uses_sentinel:
            auth = self._auth()
            return ";".join(
                f"sentinel://{auth}{netloc(host, port)}/{self.redis_db}"
                for host, port in self.sentinel_nodes
            )
        if self.redis_url:
            url = force_tls(self.redis_url) if self.is_production else self.redis_url
            return self._verified(url)
        scheme = "rediss" if self.is_production else "redis"
        auth = self._auth()
        return self._verified(
            f"{scheme}://{auth}{self.redis_host}:{self.redis_port}/{self.redis_db}"
        )

    @property
    def websocket_origin_set(self) -> frozenset[str]:
        """WEBSOCKET_ORIGINS as a set of exact origins (empty: each page's own)."""
        return frozenset(
            o.strip().rstrip("/") for o in (self.websocket_origins or "").split(",") if o.strip()
        )

    @property
    def tracing(self) -> bool:
        """True when OTEL_TRACES_EXPORTER (otlp or console) or an OTLP endpoint asks for
        traces (OTEL_TRACES_EXPORTER=none turns them off)."""
        exporter = (self.otel_traces_exporter or "").strip().lower()
        endpoint = self.otel_exporter_otlp_endpoint or self.otel_exporter_otlp_traces_endpoint
        return exporter not in ("", "none") or (bool(endpoint) and exporter != "none")

    @property
    def channel_namespace(self) -> str:
        """What the live-notification channels start with. Pub/sub channels are
        server-wide, so two environments on one Redis server (different databases)
        would hear each other's events without it: PUBSUB_NAMESPACE, else the broker's
        database (nothing for database 0, whose channels keep their original names)."""
        if self.pubsub_namespace:
            return f"{self.pubsub_namespace}:"
        # A Sentinel group's URL is one per sentinel joined by ";", each naming the db.
        database = urlsplit(self.broker_url.split(";", 1)[0]).path.strip("/")
        return f"db{database}:" if database.isdigit() and int(database) else ""

    @property
    def cache_url(self) -> str:
        """The cache Redis (may evict); defaults to the queue Redis."""
        if not self.cache_redis_url:
            return self.broker_url
        return self._verified(
            with_password(self.cache_redis_url, revealed(self.cache_redis_password))
        )

    @property
    def database_dsn(self) -> str:
        """DATABASE_URL with DATABASE_PASSWORD put in when the URL carries none."""
        return with_password(self.database_url, revealed(self.database_password))

    @property
    def redlock_url_list(self) -> list[str]:
        """Independent Redis masters for Redlock; defaults to the queue Redis alone."""
        if not self.redlock_urls:
            return [self.broker_url]
        return [self._verified(url.strip()) for url in self.redlock_urls.split(",") if url.strip()]

    def _auth(self) -> str:
        """The password part of a built URL ('' without REDIS_PASSWORD)."""
        password = revealed(self.redis_password)
        return f":{quote(password, safe='')}@" if password else ""

    def _verified(self, url: str) -> str:
        return with_certificate_checks(url, self.redis_tls_ca_file)


def revealed(secret: SecretStr | None) -> str:
    """The value of a secret setting ('' when unset): read it only where it is used."""
    return secret.get_secret_value() if secret is not None else ""


SECRETS_DIR = Path("/run/secrets")
"""Where Docker and Compose put secrets: files there named like a setting are read."""


def load_settings() -> Settings:
    """Read the environment (and SECRETS_DIR's files) now; raise ConfigError with one
    line naming the variable."""
    try:
        settings = Settings(_secrets_dir=SECRETS_DIR) if SECRETS_DIR.is_dir() else Settings()
    except ValidationError as exc:
        raise ConfigError(_one_line(exc)) from None
    if settings.ignored_for_sentinel:
        # Once per process, at its first use of the settings (its start-up).
        log.warning(
            "REDIS_SENTINELS is set, so the queue Redis is the master the sentinels name: "
            "ignoring %s",
            ", ".join(settings.ignored_for_sentinel),
        )
    return settings


def _one_line(exc: ValidationError) -> str:
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "settings"
    value = first.get("input")
    secret = "url" in field or "password" in field  # never echo credentials into logs
    shown = f" (got {value!r})" if isinstance(value, str | int | float) and not secret else ""
    message = first["msg"].removeprefix("Value error, ")
    return f"{field.upper()}: {message}{shown}"


@cache
def get_settings() -> Settings:
    """The process-wide settings, read on first use."""
    return load_settings()

"""Every setting of the platform, read once from the environment and typed.

Nothing else in the project reads ``os.environ``. Call :func:`get_settings`;
a bad value raises :class:`~csgoflip_jobs.errors.ConfigError` whose message is
one line naming the variable.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from pydantic import Field, FilePath, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from csgoflip_jobs.errors import ConfigError


class Settings(BaseSettings):
    """Typed view of the environment. Field names are the variable names, lower-cased."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    app_env: Literal["development", "test", "production"] = "development"

    celery_app: str = "csgoflip_jobs.celery_app:app"
    """The Celery app JobQueue uses when given none (``module:attribute``, as ``celery -A``)."""

    redis_url: str | None = None
    redis_host: str = "localhost"
    redis_port: int = Field(6379, ge=1, le=65535)
    redis_password: str | None = None
    redis_db: int = Field(0, ge=0, le=15)
    cache_redis_url: str | None = None
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

    database_url: str = "sqlite:///csgoflip_jobs.sqlite3"

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

    worker_prefetch_multiplier: int = Field(1, ge=1)
    """Messages a worker holds per pool process. 1 keeps slow jobs (payments) from
    queueing behind each other; 4 moved 24 % more short jobs (docs/benchmarks.md)."""

    smtp_host: str = "localhost"
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    email_from: str = "CSGOFlip <no-reply@csgoflip.local>"
    smtp_timeout_s: float = Field(10.0, gt=0)

    email_rate_limit: str = "10/s"
    """Emails per second (``N/s``) or minute (``N/m``) across all workers."""

    stats_snapshot_interval_s: int = Field(60, ge=1)
    """How often beat stores a Redis stats snapshot (for trends)."""

    gateway_client_queue_size: int = Field(100, ge=1)
    """Messages buffered per WebSocket client; beyond this the oldest are dropped."""

    flower_user: str | None = None
    flower_password: str | None = None

    flower_max_tasks: int = Field(10_000, ge=1)
    """Tasks Flower keeps in memory from the events it saw (the oldest are dropped);
    the jobs themselves are read from Redis on the Jobs pages."""

    flower_purge_offline_workers_s: int = Field(3600, ge=1)
    """Seconds after which Flower stops listing a worker that went offline (and drops
    its Prometheus series)."""

    @field_validator("redis_url", "cache_redis_url", "redlock_urls")
    @classmethod
    def _check_urls(cls, value: str | None) -> str | None:
        for url in (value or "").split(","):
            if url.strip():
                _check_redis_url(url.strip())
        return value

    @field_validator("email_rate_limit")
    @classmethod
    def _check_rate(cls, value: str) -> str:
        parse_rate(value)
        return value

    @property
    def email_rate(self) -> tuple[int, int]:
        """EMAIL_RATE_LIMIT as (emails, window in ms)."""
        return parse_rate(self.email_rate_limit)

    @property
    def is_production(self) -> bool:
        """True when APP_ENV=production: TLS to Redis and the production checks."""
        return self.app_env == "production"

    @property
    def broker_url(self) -> str:
        """The queue Redis: REDIS_URL, else built from REDIS_HOST/PORT/PASSWORD/DB."""
        if self.redis_url:
            url = _force_tls(self.redis_url) if self.is_production else self.redis_url
            return self._verified(url)
        scheme = "rediss" if self.is_production else "redis"
        auth = f":{quote(self.redis_password, safe='')}@" if self.redis_password else ""
        return self._verified(
            f"{scheme}://{auth}{self.redis_host}:{self.redis_port}/{self.redis_db}"
        )

    @property
    def cache_url(self) -> str:
        """The cache Redis (may evict); defaults to the queue Redis."""
        return self._verified(self.cache_redis_url) if self.cache_redis_url else self.broker_url

    @property
    def redlock_url_list(self) -> list[str]:
        """Independent Redis masters for Redlock; defaults to the queue Redis alone."""
        if not self.redlock_urls:
            return [self.broker_url]
        return [self._verified(url.strip()) for url in self.redlock_urls.split(",") if url.strip()]

    def _verified(self, url: str) -> str:
        return with_certificate_checks(url, self.redis_tls_ca_file)


def parse_rate(value: str) -> tuple[int, int]:
    """``"10/s"`` -> (10, 1000); ``"600/m"`` -> (600, 60000)."""
    count, _, unit = value.strip().partition("/")
    windows = {"s": 1000, "m": 60_000}
    if not count.isdigit() or int(count) < 1 or unit not in windows:
        raise ValueError("must look like 10/s or 600/m")
    return int(count), windows[unit]


def _check_redis_url(value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError("must start with redis://, rediss:// or unix://")
    if parts.scheme != "unix" and not parts.hostname:
        raise ValueError("has no host")
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError as exc:
        raise ValueError(f"has a bad port: {exc}") from None


def with_certificate_checks(url: str, ca_file: Path | None) -> str:
    """A ``rediss://`` URL whose every client verifies the server certificate.

    Adds ``ssl_cert_reqs=required`` (and ``ssl_ca_certs=<ca_file>`` when given) to the
    query, which redis-py, kombu and Celery's result backend all read; without it kombu
    would skip verification and the result backend would refuse the URL. Options the URL
    already has win; other schemes are returned unchanged.
    """
    parts = urlsplit(url)
    if parts.scheme != "rediss":
        return url
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.setdefault("ssl_cert_reqs", "required")
    if ca_file is not None:
        query.setdefault("ssl_ca_certs", str(ca_file))
    return urlunsplit(parts._replace(query=urlencode(query, safe="/", quote_via=quote)))


def _force_tls(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme == "redis":
        return urlunsplit(parts._replace(scheme="rediss"))
    return url


def load_settings() -> Settings:
    """Read the environment now; raise ConfigError with one line naming the variable."""
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(_one_line(exc)) from None


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

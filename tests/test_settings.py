"""Settings: typed, read once, the original connection semantics, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from csgoflip_jobs.errors import ConfigError
from csgoflip_jobs.helpers.connection import LinearCappedBackoff, connection_kwargs
from tests.support.environment import settings_from


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("REDIS_PORT", "abc"),
        ("REDIS_PORT", "70000"),
        ("REDIS_COMMAND_TIMEOUT_S", "-1"),
        ("REDIS_CONNECT_TIMEOUT_S", "0"),
        ("REDIS_URL", "http://example"),
        ("APP_ENV", "prod"),
        ("JOB_MAX_BYTES", "-5"),
        ("VISIBILITY_TIMEOUT_S", "1"),
        ("WORKER_PREFETCH_MULTIPLIER", "0"),
        ("REDIS_TLS_CA_FILE", "/no/such/ca.pem"),
    ],
)
def test_bad_value_names_the_variable_in_one_line(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from(monkeypatch, **{variable: value})
    message = str(caught.value)
    assert message.startswith(f"{variable}:")
    assert "\n" not in message


def test_url_errors_never_echo_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from(monkeypatch, REDIS_URL="http://:hunter2@host")
    assert "hunter2" not in str(caught.value)


def test_defaults_match_the_original_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_from(monkeypatch)
    assert settings.broker_url == "redis://localhost:6379/0"
    kwargs = connection_kwargs(settings)
    assert kwargs["socket_connect_timeout"] == 10
    assert kwargs["socket_timeout"] == 5
    assert kwargs["socket_keepalive"] is True
    assert set(kwargs["socket_keepalive_options"].values()) == {30}
    retry = kwargs["retry"]
    assert retry._retries == 10
    assert [retry._backoff.compute(n) for n in (1, 2, 3, 10, 40, 41)] == [
        0.05,
        0.1,
        0.15,
        0.5,
        2.0,
        2.0,
    ]


def test_backoff_is_min_n_times_50ms_and_2s() -> None:
    backoff = LinearCappedBackoff(50, 2000)
    assert [backoff.compute(n) for n in (1, 2, 40, 41, 100)] == [0.05, 0.1, 2.0, 2.0, 2.0]


def test_host_port_password_build_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_from(
        monkeypatch,
        REDIS_HOST="queue.internal",
        REDIS_PORT="6380",
        REDIS_PASSWORD="p@ss/word",
        REDIS_DB="2",
    )
    assert settings.broker_url == "redis://:p%40ss%2Fword@queue.internal:6380/2"


def test_no_secret_shows_in_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    """repr(get_settings()) printed REDIS_PASSWORD, FLOWER_PASSWORD and SMTP_PASSWORD:
    any traceback showing locals leaked them."""
    secrets = {
        "REDIS_PASSWORD": "redis-secret-1",
        "FLOWER_PASSWORD": "flower-secret-2",
        "SMTP_PASSWORD": "smtp-secret-3",
        "REDIS_SENTINEL_PASSWORD": "sentinel-secret-4",
        "CACHE_REDIS_URL": "redis://:cache-secret-5@cache.internal:6379/0",
        "REDLOCK_URLS": "redis://:lock-secret-6@a:6379/0,redis://:lock-secret-7@b:6379/0",
        "DATABASE_URL": "postgresql://app:db-secret-8@db.internal/payments",
    }
    settings = settings_from(monkeypatch, **secrets)
    shown = f"{settings!r} {settings!s}"
    for secret in ("redis-secret-1", "flower-secret-2", "smtp-secret-3", "sentinel-secret-4",
                   "cache-secret-5", "lock-secret-6", "lock-secret-7", "db-secret-8"):  # fmt: skip
        assert secret not in shown, secret
    assert "cache.internal" in shown and "db.internal" in shown  # the URLs keep their shape
    assert "redis-secret-1" in settings.broker_url  # what the clients are given


def test_production_uses_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings_from(monkeypatch, APP_ENV="production").broker_url.startswith("rediss://")
    settings = settings_from(monkeypatch, APP_ENV="production", REDIS_URL="redis://h:1/0")
    assert settings.broker_url == "rediss://h:1/0?ssl_cert_reqs=required"


def test_tls_urls_verify_the_server_against_the_configured_ca(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = settings_from(
        monkeypatch,
        REDIS_URL="rediss://:pw@q:6380/0",
        CACHE_REDIS_URL="rediss://c:6379/0?ssl_cert_reqs=none",
        REDLOCK_URLS="rediss://a:1/0, redis://b:2/0",
        REDIS_TLS_CA_FILE=str(ca),
    )
    verify = f"ssl_cert_reqs=required&ssl_ca_certs={ca}"
    assert settings.broker_url == f"rediss://:pw@q:6380/0?{verify}"
    assert settings.cache_url == f"rediss://c:6379/0?ssl_cert_reqs=none&ssl_ca_certs={ca}"
    assert settings.redlock_url_list == [f"rediss://a:1/0?{verify}", "redis://b:2/0"]


def test_worker_start_up_stops_with_one_clear_line() -> None:
    env = {**os.environ, "REDIS_PORT": "abc"}
    env.pop("REDIS_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "csgoflip_jobs", "worker", "-Q", "payment"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [
        "csgoflip-jobs: configuration error: REDIS_PORT: Input should be a valid integer, "
        "unable to parse string as an integer (got 'abc')"
    ]


def test_workers_take_the_prefetch_multiplier_from_the_environment() -> None:
    def multiplier(**env: str) -> str:
        return subprocess.run(
            [
                sys.executable,
                "-c",
                "import celeryconfig; print(celeryconfig.worker_prefetch_multiplier)",
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent.parent,
            env={**os.environ, **env},
        ).stdout.strip()

    assert multiplier() == "1"
    assert multiplier(WORKER_PREFETCH_MULTIPLIER="4") == "4"


def test_passwords_can_come_from_secret_files(tmp_path: Path) -> None:
    """Compose secrets: /run/secrets/<setting> (here a directory of the test's)."""
    from csgoflip_jobs.settings import Settings, revealed

    files = {"redis_password": "q@ueue", "cache_redis_password": "cache-pw",
             "database_password": "db-pw", "flower_password": "fl-pw"}  # fmt: skip
    for name, value in files.items():
        (tmp_path / name).write_text(value + "\n")
    settings = Settings(
        _secrets_dir=tmp_path,
        redis_url=None,
        redis_host="redis-queue",
        cache_redis_url="redis://redis-cache:6379/0",
        database_url="postgresql+psycopg://csgoflip@postgres:5432/csgoflip",
    )
    assert settings.broker_url == "redis://:q%40ueue@redis-queue:6379/0"
    assert settings.cache_url == "redis://:cache-pw@redis-cache:6379/0"
    assert settings.database_dsn == "postgresql+psycopg://csgoflip:db-pw@postgres:5432/csgoflip"
    assert revealed(settings.flower_password) == "fl-pw"
    assert not any(secret in repr(settings) for secret in ("q@ueue", "cache-pw", "db-pw", "fl-pw"))

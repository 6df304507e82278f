"""docker-compose.yml is accepted by docker-compose and every long-running service
has a health check (only the client runs here: no Docker engine is needed)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SECRETS = {
    "REDIS_PASSWORD": "x",
    "POSTGRES_PASSWORD": "y",
    "FLOWER_USER": "ops",
    "FLOWER_PASSWORD": "pw",
}


def compose(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("docker-compose is not installed (apt-get install docker-compose)")
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS and k != "REDIS_URL"}
    return subprocess.run(
        [binary, *args], cwd=ROOT, env={**clean, **env}, text=True, capture_output=True, timeout=60
    )


def test_the_stack_is_valid_and_every_service_is_health_checked() -> None:
    result = compose("config", env=SECRETS)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert set(services) == {
        "redis-queue",
        "redis-cache",
        "postgres",
        "migrate",
        "worker-payment",
        "worker-notification",
        "worker-email",
        "beat",
        "flower",
        "gateway",
    }
    for name, service in services.items():
        if name != "migrate":
            assert "healthcheck" in service, name
    queue_conf = (ROOT / "deploy" / "redis-queue.conf").read_text()
    assert "maxmemory-policy noeviction" in queue_conf and "appendfsync everysec" in queue_conf
    assert "allkeys-lru" in (ROOT / "deploy" / "redis-cache.conf").read_text()
    assert services["worker-payment"]["environment"]["CACHE_REDIS_URL"].startswith(
        "redis://redis-cache"
    )


def test_missing_secrets_are_refused() -> None:
    result = compose(
        "config", "-q", env={k: v for k, v in SECRETS.items() if k != "REDIS_PASSWORD"}
    )
    assert result.returncode != 0
    assert "set REDIS_PASSWORD" in result.stderr

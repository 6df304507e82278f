"""docker-compose.yml is a valid Compose file and every long-running service has a
health check. Checked as Compose reads it (YAML merge keys, then variable
interpolation) against the Compose Specification's JSON schema, with
check-jsonschema: no Docker engine, nor docker-compose, is needed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.compose import InterpolationError, interpolate, load, schema_errors
from tests.support.polling import wait_until
from tests.support.redis_servers import answers, free_port

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
SECRETS = {"FLOWER_USER": "ops"}
"""The one variable the stack needs; its passwords are Compose secrets (files)."""
PASSWORD_FILES = {"redis_password", "cache_redis_password", "database_password",
                  "flower_password"}  # fmt: skip


def test_the_stack_is_valid_and_every_service_is_health_checked(tmp_path: Path) -> None:
    stack = load(COMPOSE_FILE, SECRETS)
    assert schema_errors(stack, tmp_path) is None, schema_errors(stack, tmp_path)
    services = stack["services"]
    default = {name for name, service in services.items() if "profiles" not in service}
    assert default == {
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
    worker_env = services["worker-payment"]["environment"]
    assert worker_env["CACHE_REDIS_URL"] == "redis://redis-cache:6379/0"
    assert worker_env["REDIS_HOST"] == "redis-queue" and "REDIS_URL" not in worker_env
    assert worker_env["QUEUE"] == "payment"
    assert set(services["worker-payment"]["secrets"]) == PASSWORD_FILES
    assert set(stack["secrets"]) == PASSWORD_FILES
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"].startswith("/run/secrets/")
    # `$$` is Compose's literal `$`: the shell in the container expands it.
    assert "$${QUEUE}" not in str(services["worker-payment"]["healthcheck"]["test"])
    assert "${QUEUE}@$HOSTNAME" in services["worker-payment"]["healthcheck"]["test"][1]


def test_the_ha_profile_adds_a_replica_and_three_sentinels_the_platform_can_use() -> None:
    stack = load(COMPOSE_FILE, {**SECRETS, "REDIS_SENTINELS": "sentinel-1:26379"})
    services = stack["services"]
    ha = {name for name, service in services.items() if service.get("profiles") == ["ha"]}
    assert ha == {"redis-queue-replica", "sentinel-1", "sentinel-2", "sentinel-3"}
    for name in ha:
        assert "healthcheck" in services[name], name
    assert "--replicaof redis-queue 6379" in services["redis-queue-replica"]["command"][2]
    # Either node may be promoted, so both authenticate to the other and use one file.
    for name in ("redis-queue", "redis-queue-replica"):
        command = services[name]["command"][2]
        assert "masterauth %s" in command and "cat /run/secrets/redis_password" in command
        assert (
            "./deploy/redis-queue.conf:/usr/local/etc/redis/redis.conf:ro"
            in services[name]["volumes"]
        )
    sentinel_conf = (ROOT / "deploy" / "sentinel.conf").read_text()
    env = services["worker-payment"]["environment"]
    assert f"sentinel monitor {env['REDIS_SENTINEL_MASTER']} redis-queue 6379 2" in sentinel_conf
    assert env["REDIS_SENTINELS"] == "sentinel-1:26379"
    assert env["REDIS_MIN_REPLICAS_ACK"] == "0"
    auth = "auth-pass csgoflip-queue $(cat /run/secrets/redis_password)"
    assert auth in services["sentinel-2"]["command"][2]
    # Without the profile the app does not wait for sentinels that are not there.
    assert services["beat"]["depends_on"]["sentinel-1"]["required"] is False
    # Unset, REDIS_SENTINELS is empty: the platform reads that as no Sentinel.
    plain = load(COMPOSE_FILE, SECRETS)["services"]["beat"]["environment"]
    assert plain["REDIS_SENTINELS"] == ""


def test_a_missing_flower_user_is_refused() -> None:
    with pytest.raises(InterpolationError, match="set FLOWER_USER"):
        load(COMPOSE_FILE, {})


def test_no_password_is_in_the_environment_or_a_command_line() -> None:
    """Compose passed --requirepass on the command line (docker inspect, ps) and kept
    every password in the containers' environment; the cache Redis had none."""
    planted = {**SECRETS, "REDIS_PASSWORD": "planted-1", "POSTGRES_PASSWORD": "planted-2",
               "FLOWER_PASSWORD": "planted-3"}  # fmt: skip
    stack = load(COMPOSE_FILE, planted)
    text = json.dumps(stack)
    assert "planted-" not in text and "--requirepass" not in text
    for name, service in stack["services"].items():
        assert not any("PASSWORD" in k and not k.endswith("_FILE")
                       for k in service.get("environment", {})), name  # fmt: skip
    assert "cat /run/secrets/cache_redis_password" in stack["services"]["redis-cache"]["command"][2]


REDIS_SECRETS = [("redis-queue", "redis_password"), ("redis-cache", "cache_redis_password")]


@pytest.mark.parametrize(("service", "secret"), REDIS_SECRETS)
def test_the_redis_commands_require_their_secret(tmp_path: Path, service: str, secret: str) -> None:
    """The service's own command, run by sh with a real redis-server (its paths moved
    into tmp_path, on a free loopback port): the password is required and works."""
    (tmp_path / secret).write_text("s3cret-from-a-file\n")
    command = load(COMPOSE_FILE, SECRETS)["services"][service]["command"][2]
    port = free_port()
    command = (
        command.replace("/run/secrets/", f"{tmp_path}/")
        .replace("/tmp/auth.conf", f"{tmp_path}/auth.conf")
        .replace("/usr/local/etc/redis/redis.conf", str(ROOT / "deploy" / f"{service}.conf"))
        .replace("--replica-announce-ip redis-queue", "")
    ) + f" --port {port} --bind 127.0.0.1 --dir {tmp_path} --daemonize no --appendonly no"
    server = subprocess.Popen(["sh", "-c", command], stdout=subprocess.DEVNULL)
    try:
        wait_until(lambda: answers(f"redis://:s3cret-from-a-file@127.0.0.1:{port}/0"), 10)
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port).ping()
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_the_schema_check_rejects_what_compose_would(tmp_path: Path) -> None:
    """The validator is no rubber stamp: a misspelt key, or a wrong type, is refused."""
    stack: dict[str, Any] = load(COMPOSE_FILE, SECRETS)
    stack["services"]["beat"]["healthchek"] = stack["services"]["beat"].pop("healthcheck")
    errors = schema_errors(stack, tmp_path)
    assert errors is not None and "healthchek" in errors
    stack = load(COMPOSE_FILE, SECRETS)
    stack["services"]["flower"]["ports"] = "127.0.0.1:5555:5555"
    assert schema_errors(stack, tmp_path) is not None


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("a$$b", {}, "a$b"),
        ("$A-${A}", {"A": "1"}, "1-1"),
        ("${A:-d}|${A-d}", {"A": ""}, "d|"),
        ("${A:-d}|${A-d}", {}, "d|d"),
        ("${A:+r}|${A+r}", {"A": ""}, "|r"),
        ("${A:-x${B:-y}z}", {}, "xyz"),
        ("${A:-${B:?set B}}", {"A": "a"}, "a"),  # the default is read only when used
    ],
)
def test_interpolation_follows_the_compose_specification(
    text: str, env: dict[str, str], expected: str
) -> None:
    assert interpolate(text, env) == expected


def test_a_required_variable_names_itself() -> None:
    with pytest.raises(InterpolationError, match="required variable B is missing a value: set B"):
        interpolate("${A:-${B:?set B}}", {"B": ""})
    assert interpolate("${B?set B}", {"B": ""}) == ""

"""docker-compose.yml is a valid Compose file and every long-running service has a
health check. Checked as Compose reads it (YAML merge keys, then variable
interpolation) against the Compose Specification's JSON schema, with
check-jsonschema: no Docker engine, nor docker-compose, is needed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.compose import InterpolationError, interpolate, load, schema_errors

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
SECRETS = {
    "REDIS_PASSWORD": "x",
    "POSTGRES_PASSWORD": "y",
    "FLOWER_USER": "ops",
    "FLOWER_PASSWORD": "pw",
}


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
    assert worker_env["CACHE_REDIS_URL"].startswith("redis://redis-cache")
    assert worker_env["REDIS_URL"] == "redis://:x@redis-queue:6379/0"
    assert worker_env["QUEUE"] == "payment"
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
    replica = services["redis-queue-replica"]["command"]
    assert replica[replica.index("--replicaof") + 1 :][:2] == ["redis-queue", "6379"]
    # Either node may be promoted, so both authenticate to the other and use one file.
    for name in ("redis-queue", "redis-queue-replica"):
        command = services[name]["command"]
        assert command[command.index("--masterauth") + 1] == "x"
        assert (
            "./deploy/redis-queue.conf:/usr/local/etc/redis/redis.conf:ro"
            in services[name]["volumes"]
        )
    sentinel_conf = (ROOT / "deploy" / "sentinel.conf").read_text()
    env = services["worker-payment"]["environment"]
    assert f"sentinel monitor {env['REDIS_SENTINEL_MASTER']} redis-queue 6379 2" in sentinel_conf
    assert env["REDIS_SENTINELS"] == "sentinel-1:26379"
    assert env["REDIS_PASSWORD"] == "x" and env["REDIS_MIN_REPLICAS_ACK"] == "0"
    assert "auth-pass csgoflip-queue $REDIS_PASSWORD" in services["sentinel-2"]["command"][2]
    # Without the profile the app does not wait for sentinels that are not there.
    assert services["beat"]["depends_on"]["sentinel-1"]["required"] is False
    # Unset, REDIS_SENTINELS is empty: the platform reads that as no Sentinel.
    plain = load(COMPOSE_FILE, SECRETS)["services"]["beat"]["environment"]
    assert plain["REDIS_SENTINELS"] == ""


def test_missing_secrets_are_refused() -> None:
    without_password = {k: v for k, v in SECRETS.items() if k != "REDIS_PASSWORD"}
    with pytest.raises(InterpolationError, match="set REDIS_PASSWORD"):
        load(COMPOSE_FILE, without_password)


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

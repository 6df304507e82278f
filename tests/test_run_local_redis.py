"""run-local says which Redis it uses (no password), how that Redis persists and evicts,
and warns when it is not the append-only, noeviction one it promises; ``--redis-url``
(or REDIS_URL) chooses it, and one that does not answer stops run-local at once. The
whole stack on a chosen Redis is in tests/test_run_local.py (slow)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from csgoflip_jobs.ops.local_stack import RedisDurability, redis_durability, report_redis
from tests.support.redis_servers import RedisServer, free_port, start_redis

PASSWORD = "s3cret-local"


@pytest.fixture
def servers() -> Iterator[list[RedisServer]]:
    """Private redis-servers started by the test; stopped after it."""
    started: list[RedisServer] = []
    yield started
    for server in started:
        server.stop()


def test_a_redis_that_keeps_nothing_is_reported_and_warned(
    servers: list[RedisServer], capsys: pytest.CaptureFixture[str]
) -> None:
    servers.append(start_redis("--requirepass", PASSWORD))  # --save "" --appendonly no
    url = servers[0].url_with_password(PASSWORD)

    report_redis(url, started_here=False)

    out, err = capsys.readouterr()
    port = servers[0].port
    assert out.splitlines() == [
        f"csgoflip-jobs: Redis redis://:**@127.0.0.1:{port}/0 (already running)",
        "  persistence: none; maxmemory-policy: noeviction",
    ]
    assert err.startswith("csgoflip-jobs: WARNING: this Redis is not the append-only")
    assert "no append-only file: a restart loses jobs" in err and "--redis-url" in err
    assert PASSWORD not in out + err


def test_an_append_only_noeviction_redis_is_as_promised(
    servers: list[RedisServer], capsys: pytest.CaptureFixture[str]
) -> None:
    servers.append(start_redis("--appendonly", "yes", "--maxmemory-policy", "noeviction"))

    durability = redis_durability(servers[0].url)
    report_redis(servers[0].url, started_here=True)

    assert durability == RedisDurability(True, "everysec", "", "noeviction")
    assert durability.shortfalls() == []
    out, err = capsys.readouterr()
    assert "(started here, data in var/redis)" in out
    assert "persistence: AOF (appendfsync everysec); maxmemory-policy: noeviction" in out
    assert err == ""


def test_rdb_only_and_an_evicting_policy_are_both_named(servers: list[RedisServer]) -> None:
    servers.append(start_redis("--save", "60 1", "--maxmemory-policy", "allkeys-lru"))

    durability = redis_durability(servers[0].url)

    assert durability.persistence == "RDB (save 60 1)"
    assert durability.shortfalls() == [
        "no append-only file: a restart loses jobs written since the last RDB snapshot",
        "maxmemory-policy allkeys-lru: jobs can be evicted",
    ]


def test_a_redis_that_refuses_config_get_is_unknown_and_warned(
    servers: list[RedisServer],
) -> None:
    servers.append(start_redis("--rename-command", "CONFIG", ""))

    durability = redis_durability(servers[0].url)

    assert durability.appendonly is None and durability.policy is None
    assert durability.persistence.startswith("unknown (CONFIG GET refused: ")
    assert durability.shortfalls()[0].startswith("its persistence and maxmemory-policy are unknown")


@pytest.mark.parametrize("how", ["flag", "environment", "flag over environment"])
def test_a_chosen_redis_that_does_not_answer_stops_run_local_at_once(
    tmp_path: Path, redis_url: str, how: str
) -> None:
    """Nothing is started and nothing else is tried: the choice was explicit."""
    silent = f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0"
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    if how == "environment":
        env["REDIS_URL"] = silent
    elif how == "flag over environment":
        env["REDIS_URL"] = redis_url  # answers, but the flag wins
    args = [] if how == "environment" else ["--redis-url", silent]
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "csgoflip_jobs.ops.cli", "run-local", "--no-demo", *args],
        cwd=tmp_path,
        env={**env, "DATABASE_URL": f"sqlite:///{tmp_path / 'local.sqlite3'}"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert time.monotonic() - started < 30
    assert result.returncode == 1, result.stdout + result.stderr
    redacted = silent.replace(PASSWORD, "**")
    assert f"Redis {redacted} (--redis-url or REDIS_URL) does not answer" in result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    assert not (tmp_path / "var" / "logs").exists()

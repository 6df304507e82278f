"""Redis Sentinel without a failover: the settings, one clear error for a wrong group,
and every part of the platform finding the queue Redis through the sentinels (workers,
results, beat, Flower, the gateway, the CLI), also while the first sentinel is down.

Each test starts its own group on 127.0.0.1 (tests/support/sentinels.py); this process
is pointed at it through the environment, as in tests/test_faults_and_security.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import kombu
import pytest
import redis
from celery import Celery

from csgoflip_jobs import JobQueue
from csgoflip_jobs.engine.celery_ext.sentinel import SentinelChannel
from csgoflip_jobs.errors import ConfigError
from csgoflip_jobs.helpers.connection import make_client
from csgoflip_jobs.helpers.errors import BrokerUnavailableError
from csgoflip_jobs.helpers.sessions import SessionService
from csgoflip_jobs.keys import STATS_SNAPSHOTS_KEY
from csgoflip_jobs.ops.readiness import run_checks
from csgoflip_jobs.settings import load_settings
from tests.support.child_processes import ROOT, spawn_logged
from tests.support.environment import FAST_FAILING, give_up_bound_s, pointing, settings_from
from tests.support.flower_process import running_flower
from tests.support.gateway_process import start_gateway
from tests.support.polling import wait_until
from tests.support.redis_servers import free_port, make_tls_files, start_redis
from tests.support.sentinels import MASTER_NAME, SentinelGroup, start_sentinel_group
from tests.support.workers import WorkerProcess, wait_for_log

pytestmark = pytest.mark.fault


@pytest.fixture
def group() -> Iterator[SentinelGroup]:
    """A master, one replica and three sentinels."""
    started = start_sentinel_group()
    yield started
    started.stop()


@pytest.fixture
def use_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[dict[str, str]], Celery]]:
    """Point this process at other settings; returns a Celery app built from them."""
    yield from pointing(monkeypatch)


# --- settings -------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["sentinel-1", "host:", "host:99999", "a:26379,,b:26379"])
def test_a_bad_sentinel_list_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    with pytest.raises(ConfigError, match=r"^REDIS_SENTINELS: must be a comma list of host:port"):
        settings_from(monkeypatch, REDIS_SENTINELS=value, REDIS_SENTINEL_MASTER="q")


def test_sentinels_need_the_master_name(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"^REDIS_SENTINEL_MASTER: must be set"):
        settings_from(monkeypatch, REDIS_SENTINELS="10.0.0.1:26379")


def test_an_empty_sentinel_list_means_no_sentinel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Compose passes ``${REDIS_SENTINELS:-}``: set but empty without the ha profile."""
    settings = settings_from(monkeypatch, REDIS_SENTINELS=" ", REDIS_URL="redis://h:6379/0")
    assert not settings.uses_sentinel and settings.broker_url == "redis://h:6379/0"


def test_the_replica_ack_timeout_must_end_before_the_command_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {"REDIS_MIN_REPLICAS_ACK": "1", "REDIS_COMMAND_TIMEOUT_S": "1"}
    with pytest.raises(ConfigError, match=r"^REDIS_REPLICA_ACK_TIMEOUT_MS: must be below"):
        settings_from(monkeypatch, REDIS_REPLICA_ACK_TIMEOUT_MS="1000", **env)
    assert settings_from(monkeypatch, REDIS_REPLICA_ACK_TIMEOUT_MS="900", **env)


def test_sentinels_take_precedence_and_what_is_ignored_is_named(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    env = {
        "REDIS_SENTINELS": "10.0.0.1:26379, [fd00::2]:26380",
        "REDIS_SENTINEL_MASTER": "queue",
        "REDIS_URL": "redis://10.9.9.9:6379/0",
        "REDIS_HOST": "10.9.9.8",
        "REDIS_PASSWORD": "p@ss",
        "REDIS_DB": "3",
        "CACHE_REDIS_URL": "redis://10.0.0.9:6379/0",
    }
    with caplog.at_level(logging.WARNING, logger="csgoflip_jobs.settings"):
        settings = settings_from(monkeypatch, **env)
    assert settings.broker_url == (
        "sentinel://:p%40ss@10.0.0.1:26379/3;sentinel://:p%40ss@[fd00::2]:26380/3"
    )
    assert settings.sentinel_nodes == [("10.0.0.1", 26379), ("fd00::2", 26380)]
    assert settings.cache_url == "redis://10.0.0.9:6379/0"  # the cache may stay plain
    assert settings.redlock_url_list == [settings.broker_url]
    assert "ignoring REDIS_URL, REDIS_HOST" in caplog.text
    assert "p@ss" not in caplog.text


# --- one clear error ----------------------------------------------------------------------
def test_no_reachable_sentinel_is_one_clear_error_within_the_bound(
    use_env: Callable[..., Celery],
) -> None:
    nowhere = f"127.0.0.1:{free_port()},127.0.0.1:{free_port()}"
    env = {"REDIS_SENTINELS": nowhere, "REDIS_SENTINEL_MASTER": MASTER_NAME, **FAST_FAILING}
    queue = JobQueue("notification", app=use_env(env))
    started = time.monotonic()
    with pytest.raises(BrokerUnavailableError, match="REDIS_SENTINELS: no sentinel answered") as e:
        queue.add("test-record", {"n": 1})
    elapsed = time.monotonic() - started
    assert elapsed < give_up_bound_s(), elapsed
    assert "\n" not in str(e.value)
    result = subprocess.run(
        [sys.executable, "-m", "csgoflip_jobs.ops.cli", "check"],
        env={**os.environ},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 1
    assert "REDIS_SENTINELS: no sentinel answered" in result.stdout


def test_an_unknown_master_name_fails_at_once_naming_the_variable(
    group: SentinelGroup, use_env: Callable[..., Celery], tmp_path: Path
) -> None:
    env = {**group.env, "REDIS_SENTINEL_MASTER": "no-such-master"}
    queue = JobQueue("notification", app=use_env(env))
    started = time.monotonic()
    with pytest.raises(BrokerUnavailableError) as caught:
        queue.add("test-record", {"n": 1})
    assert time.monotonic() - started < 1.0  # not retried: waiting does not fix a name
    assert "REDIS_SENTINEL_MASTER: no sentinel of REDIS_SENTINELS monitors a master named" in str(
        caught.value
    )
    assert f"(they monitor: {MASTER_NAME})" in str(caught.value)
    # A worker keeps trying (as after a restart), logging the same line.
    log = tmp_path / "worker.log"
    command = [sys.executable, "-m", "celery", "-A", "csgoflip_jobs", "worker", "-l", "info"]
    worker = WorkerProcess(spawn_logged(command, log, env), log)
    try:
        wait_for_log(worker, "REDIS_SENTINEL_MASTER: no sentinel of REDIS_SENTINELS", 30)
    finally:
        worker.kill()


# --- every part through the sentinels -------------------------------------------------------
def test_every_part_finds_the_master_through_the_sentinels_while_the_first_is_down(
    group: SentinelGroup,
    use_env: Callable[..., Celery],
    workers: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    group.sentinels[0].kill()  # stock Flower and old kombu asked only the first one
    group.sentinels[0].wait()
    env = {**group.env, "STATS_SNAPSHOT_INTERVAL_S": "1"}
    app = use_env(env)
    master = group.node(group.master_port())
    with app.connection_for_write() as connection:
        assert isinstance(connection.default_channel, SentinelChannel)
    workers(name="s1", env=env)
    queue = JobQueue("notification", app=app)
    ids = queue.add_bulk([{"name": "test-record", "data": {"n": n}} for n in range(20)])
    wait_until(lambda: queue.get_job_counts()["completed"] == 20, 30)
    returned = sorted(job.returnvalue["n"] for job in queue.get_completed())
    assert returned == list(range(20))  # stored by the Sentinel result backend
    assert master.exists(*[f"celery-task-meta-{job_id}" for job_id in ids]) == 20

    beat = spawn_logged(
        [sys.executable, "-m", "celery", "-A", "csgoflip_jobs", "beat"], tmp_path / "beat.log", env
    )
    try:
        wait_until(lambda: master.llen(STATS_SNAPSHOTS_KEY) >= 2, 30, interval=0.2)
    finally:
        beat.kill()
        beat.wait()

    credentials = {"FLOWER_USER": "ops", "FLOWER_PASSWORD": "flower-pass-8c1"}
    with running_flower(tmp_path / "flower.log", {**env, **credentials}) as flower:
        queue.add("test-record", {"n": 99}, delay=60_000)
        auth = (credentials["FLOWER_USER"], credentials["FLOWER_PASSWORD"])
        lengths = httpx.get(f"{flower}/api/queues/length", auth=auth, timeout=10).json()
        depths = {q["name"]: q["messages"] for q in lengths["active_queues"]}
        assert depths.get("notification") == 0, lengths  # read from the master

    gateway = start_gateway(tmp_path / "gateway.log", env)
    try:
        session = SessionService(make_client(load_settings().broker_url)).create(7)

        async def notified() -> dict[str, Any]:
            async with gateway.signed_in(session.id) as socket:
                await asyncio.sleep(0.3)
                queue.add("send-notification", {"user_id": 7, "type": "ha", "payload": {}})
                return dict(json.loads(await asyncio.wait_for(socket.recv(), 10)))

        assert asyncio.run(notified())["type"] == "ha"
    finally:
        gateway.stop()

    counts = subprocess.run(
        [sys.executable, "-m", "csgoflip_jobs.ops.cli", "counts", "--json"],
        env={**os.environ},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert counts.returncode == 0, counts.stderr
    assert json.loads(counts.stdout)["notification"]["delayed"] == 1


def test_a_tls_only_group_is_used_and_verified_against_the_ca(
    tmp_path: Path,
    use_env: Callable[..., Celery],
    workers: Callable[..., WorkerProcess],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Sentinels, master and replica speak TLS only (REDIS_SENTINEL_TLS): the broker,
    the result backend and the helpers verify them against REDIS_TLS_CA_FILE."""
    group = start_sentinel_group(tls=make_tls_files(tmp_path))
    try:
        app = use_env(group.env)
        workers(name="tls1", env=group.env)
        queue = JobQueue("notification", app=app)
        queue.add_bulk([{"name": "test-record", "data": {"n": n}} for n in range(10)])
        wait_until(lambda: queue.get_job_counts()["completed"] == 10, 30)
        assert sorted(job.returnvalue["n"] for job in queue.get_completed()) == list(range(10))
        monkeypatch.delenv("REDIS_TLS_CA_FILE")
        without_ca = load_settings()
        with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
            make_client(without_ca.broker_url, without_ca).ping()
    finally:
        group.stop()


def test_check_reports_the_sentinel_group_and_warns_about_redlock_on_its_nodes(
    group: SentinelGroup, use_env: Callable[..., Celery]
) -> None:
    replica = group.replica_ports()[0]
    use_env(
        {
            **group.env,
            "REDLOCK_URLS": f"redis://localhost:{replica}/0",
            "REDIS_MIN_REPLICAS_ACK": "2",
        }
    )
    checks = {check.name: check for check in run_checks()}
    sentinel = checks["Sentinel"]
    assert sentinel.ok is True
    assert f"master {MASTER_NAME!r} at 127.0.0.1:{group.master_port()}" in sentinel.detail
    assert "1 of 1 replica(s) in sync, quorum 2, 3 of 3 sentinels answer" in sentinel.detail
    redlock = checks["Redlock masters"]
    assert redlock.ok is False and redlock.advisory
    assert f"localhost:{replica}" in redlock.detail
    durable = checks["durable enqueue"]
    assert durable.ok is False and not durable.advisory  # every add would fail


def test_check_warns_in_production_without_sentinel_or_replica(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = start_redis()
    try:
        settings = settings_from(monkeypatch, APP_ENV="production")
        checks = {c.name: c for c in run_checks(settings, make_client(server.url, settings))}
        assert checks["replicas"].ok is False and checks["replicas"].advisory
        assert "neither Sentinel nor a replica" in checks["replicas"].detail
        replica = start_redis("--replicaof", "127.0.0.1", str(server.port))
        try:
            wait_until(
                lambda: make_client(server.url, settings).info("replication")["connected_slaves"],
                10,
            )
            checks = {c.name: c for c in run_checks(settings, make_client(server.url, settings))}
            assert checks["replicas"].ok is True
            assert "a failover is manual" in checks["replicas"].detail
        finally:
            replica.stop()
    finally:
        server.stop()


def test_the_platform_transport_takes_sentinel_urls(
    group: SentinelGroup, use_env: Callable[..., Celery]
) -> None:
    """kombu.Connection('sentinel://...') gets the platform's channel (DELIVER, ENQUEUE)."""
    app = use_env(group.env)
    options = app.conf.broker_transport_options
    with kombu.Connection(app.conf.broker_url, transport_options=options) as connection:
        channel = connection.channel()
        try:
            assert isinstance(channel, SentinelChannel)
            assert channel.client.ping()
        finally:
            channel.close()

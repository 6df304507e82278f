"""Faults and security, each on a private redis-server with real workers: a password,
TLS with a CA the test makes, a wrong password, Redis down or paused when jobs are
enqueued, Redis out of memory, and Flower's basic auth.

Nothing here touches the shared test Redis, so this module can run beside the rest of
the suite. The test process is pointed at its private server through the environment
(the settings are read again and a fresh Celery app is built from ``celeryconfig``),
and workers get the same environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis
from celery import Celery

from csgoflip_jobs import JobQueue
from csgoflip_jobs.helpers.connection import broker_client, make_client
from csgoflip_jobs.helpers.errors import (
    BrokerAuthenticationError,
    BrokerUnavailableError,
)
from csgoflip_jobs.ops.readiness import run_checks
from csgoflip_jobs.settings import get_settings
from tests.support.exactly_once import assert_each_completed_once, enqueue_records
from tests.support.flower_process import running_flower
from tests.support.polling import wait_until
from tests.support.redis_servers import RedisServer, make_tls_files
from tests.support.workers import WorkerProcess

pytestmark = pytest.mark.fault

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct-horse-7f3a"
WRONG_PASSWORD = "wrong-horse-91bc"
JOBS = 20


def test_a_password_protected_redis_runs_every_job_exactly_once(
    servers: Callable[..., RedisServer],
    use_redis: Callable[..., Celery],
    start_workers: Callable[..., WorkerProcess],
) -> None:
    server = servers("--requirepass", PASSWORD)
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=server.port).set("probe", 1)  # the password is really required
    url = server.url_with_password(PASSWORD)
    app = use_redis(url)
    queue = JobQueue("notification", app=app)
    ids = enqueue_records(queue, JOBS)
    assert len(set(ids)) == JOBS and queue.get_job_counts()["waiting"] == JOBS
    worker = start_workers({"REDIS_URL": url})
    assert_each_completed_once(queue, broker_client(), ids, timeout=30)
    assert PASSWORD not in worker.log()
    # What `celery inspect conf` and Flower's worker Config tab show: no password (the
    # beat scheduler's URL carried it in clear).
    shown = app.control.inspect(timeout=5).conf(with_defaults=True)
    assert shown and "redbeat_redis_url" in json.dumps(shown)
    assert PASSWORD not in json.dumps(shown)


def test_a_tls_only_redis_is_verified_against_the_configured_ca(
    tmp_path: Path,
    servers: Callable[..., RedisServer],
    use_redis: Callable[..., Celery],
    start_workers: Callable[..., WorkerProcess],
) -> None:
    tls = make_tls_files(tmp_path)
    server = servers("--requirepass", PASSWORD, tls=tls)
    url = server.url_with_password(PASSWORD)  # rediss://, TLS port only
    # The certificate is checked: without our CA its self-signed chain is refused.
    untrusting = JobQueue("payment", app=use_redis(url))
    with pytest.raises(BrokerUnavailableError, match="certificate verify failed"):
        untrusting.add("test-record", {"n": -1})
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        make_client(get_settings().broker_url, retry=None).ping()

    env = {"REDIS_URL": url, "REDIS_TLS_CA_FILE": str(tls.ca_cert)}
    queue = JobQueue("payment", app=use_redis(url, REDIS_TLS_CA_FILE=str(tls.ca_cert)))
    ids = enqueue_records(queue, JOBS)
    checks = {check.name: check.ok for check in run_checks()}
    assert checks["connection"] and checks["TLS"] and checks["password"]
    worker = start_workers(env)
    assert_each_completed_once(queue, broker_client(), ids, timeout=30)
    assert "insecure" not in worker.log().lower()  # kombu warns when it skips verification


def test_a_wrong_password_fails_fast_and_says_so(
    tmp_path: Path,
    servers: Callable[..., RedisServer],
    use_redis: Callable[..., Celery],
    start_workers: Callable[..., WorkerProcess],
) -> None:
    server = servers("--requirepass", PASSWORD)
    url = server.url_with_password(WRONG_PASSWORD)
    shown = f"redis://:**@127.0.0.1:{server.port}/0"
    queue = JobQueue("payment", app=use_redis(url))
    for enqueue in (
        lambda: queue.add("test-record", {"n": 1}),
        lambda: queue.add_bulk([{"name": "test-record", "data": {"n": 2}}]),
    ):
        started = time.monotonic()
        with pytest.raises(BrokerAuthenticationError) as caught:
            enqueue()
        assert time.monotonic() - started < 5
        assert "refused the password" in str(caught.value) and shown in str(caught.value)
        assert WRONG_PASSWORD not in str(caught.value)
    assert redis.Redis(port=server.port, password=PASSWORD).dbsize() == 0

    started = time.monotonic()
    check = subprocess.run(
        [sys.executable, "-m", "csgoflip_jobs.ops.cli", "check"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "REDIS_URL": url},
    )
    assert time.monotonic() - started < 15  # mostly the interpreter starting
    assert check.returncode == 1 and "Traceback" not in check.stderr
    lines = {line.split()[1]: line for line in check.stdout.splitlines() if len(line.split()) > 1}
    assert (
        lines["connection"].startswith("UNSAFE") and "refused the password" in lines["connection"]
    )
    assert lines["eviction"].startswith("unknown")
    assert WRONG_PASSWORD not in check.stdout + check.stderr

    # A worker does not exit: like after a Redis restart it keeps reconnecting, and says
    # why on every try (kombu's consumer, every 2, 4, 6... s).
    worker = start_workers({"REDIS_URL": url}, wait_ready=False)
    wait_until(lambda: "invalid username-password pair" in worker.log(), 20, interval=0.2)
    log = worker.log()
    assert f"Cannot connect to {shown}: invalid username-password pair" in log
    assert "ready." not in log and WRONG_PASSWORD not in log
    assert worker.process.poll() is None


def test_flower_answers_only_the_right_credentials(
    tmp_path: Path, servers: Callable[..., RedisServer]
) -> None:
    server = servers()
    env = {"REDIS_URL": server.url, "FLOWER_USER": "ops", "FLOWER_PASSWORD": PASSWORD}
    with running_flower(tmp_path / "flower.log", env) as base:
        for path in (
            "/",
            "/workers",
            "/tasks",
            "/broker",
            "/api/workers",
            "/api/tasks",
            "/metrics",
        ):
            anonymous = httpx.get(base + path, timeout=10)
            assert anonymous.status_code == 401, path
            if not path.startswith("/api/"):  # a browser asks for the credentials
                assert anonymous.headers["WWW-Authenticate"].startswith("Basic"), path
            assert (
                httpx.get(base + path, auth=("ops", WRONG_PASSWORD), timeout=10).status_code == 401
            )
            assert httpx.get(base + path, auth=("root", PASSWORD), timeout=10).status_code == 401
            assert httpx.get(base + path, auth=("ops", PASSWORD), timeout=10).status_code == 200, (
                path
            )
        # What can harm: shutting workers down, revoking tasks.
        for path in ("/api/worker/shutdown/fault1@host", "/api/task/revoke/some-id"):
            assert httpx.post(base + path, timeout=10).status_code == 401, path
            wrong = httpx.post(base + path, auth=("ops", WRONG_PASSWORD), timeout=10)
            assert wrong.status_code == 401, path

    # Started as `celery -A csgoflip_jobs flower`, /metrics is behind the credentials too.
    with running_flower(
        tmp_path / "celery-flower.log", env, f"--basic-auth=ops:{PASSWORD}"
    ) as base:
        assert httpx.get(base + "/metrics", timeout=10).status_code == 401
        metrics = httpx.get(base + "/metrics", auth=("ops", PASSWORD), timeout=10)
        assert metrics.status_code == 200 and "flower_events_total" in metrics.text

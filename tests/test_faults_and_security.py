"""Faults and security, each on a private redis-server with real workers: a password,
TLS with a CA the test makes, a wrong password, Redis down or paused when jobs are
enqueued, Redis out of memory, and Flower's basic auth.

Nothing here touches the shared test Redis, so this module can run beside the rest of
the suite. The test process is pointed at its private server through the environment
(the settings are read again and a fresh Celery app is built from ``celeryconfig``),
and workers get the same environment.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import kombu.pools
import pytest
import redis
from celery import Celery

from csgoflip_jobs import JobQueue
from csgoflip_jobs import app as default_app
from csgoflip_jobs.celery_app import create_app
from csgoflip_jobs.errors import CsgoflipJobsError
from csgoflip_jobs.helpers.connection import broker_client, make_client
from csgoflip_jobs.helpers.errors import (
    BrokerAuthenticationError,
    BrokerOutOfMemoryError,
    BrokerTimeoutError,
    BrokerUnavailableError,
)
from csgoflip_jobs.keys import job_key
from csgoflip_jobs.ops.readiness import run_checks
from csgoflip_jobs.settings import get_settings
from tests.support.flower_process import running_flower
from tests.support.jobs import RUNS_KEY
from tests.support.polling import wait_until
from tests.support.redis_servers import RedisServer, free_port, make_tls_files, start_redis
from tests.support.workers import WorkerProcess, start_worker

pytestmark = pytest.mark.fault

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct-horse-7f3a"
WRONG_PASSWORD = "wrong-horse-91bc"
JOBS = 20

FAST_FAILING = {
    "REDIS_CONNECT_TIMEOUT_S": "0.5",
    "REDIS_COMMAND_TIMEOUT_S": "0.5",
    "REDIS_MAX_RETRIES": "3",
}
"""Connection settings small enough that an outage is noticed within a few seconds."""


def give_up_bound_s() -> float:
    """How long one enqueue may take against a Redis that is down or paused, from the
    settings: every try may spend a connect and a command timeout, plus the backoff
    waits between tries, plus 1 s for Python and the machine."""
    settings = get_settings()
    tries = settings.redis_max_retries + 1
    backoff_ms = sum(
        min(n * settings.redis_retry_step_ms, settings.redis_retry_cap_ms)
        for n in range(1, settings.redis_max_retries + 1)
    )
    per_try = settings.redis_connect_timeout_s + settings.redis_command_timeout_s
    return tries * per_try + backoff_ms / 1000 + 1.0


def app_from_environment() -> Celery:
    """A Celery app wired as ``csgoflip_jobs.app`` is, from ``celeryconfig`` as it reads the
    environment now (the package's app read it once, for good), knowing the same tasks."""
    spec = importlib.util.find_spec("celeryconfig")
    assert spec is not None and spec.loader is not None
    config = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(config)
    app = create_app(config, set_as_current=False)
    app.tasks.update(default_app.tasks)  # JobQueue checks names and data against them
    return app


def forget_settings() -> None:
    """Drop the cached settings, the process-wide client and kombu's producer pools: the
    next use reads the environment again. (kombu shares pools between apps whose broker
    has the same host, port and password, even when their TLS options differ.)"""
    if broker_client.cache_info().currsize:
        broker_client().close()
    broker_client.cache_clear()
    get_settings.cache_clear()
    kombu.pools.reset()
    # The package's app holds on to the pools just closed: let it take new ones.
    default_app._pool = None
    default_app.amqp._producer_pool = None


@pytest.fixture
def servers() -> Iterator[Callable[..., RedisServer]]:
    """Start private redis-servers (arguments as for ``start_redis``); all stop at the end."""
    started: list[RedisServer] = []

    def start(*args: str, **kwargs: Any) -> RedisServer:
        server = start_redis(*args, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            os.kill(server.process.pid, signal.SIGCONT)  # in case a test paused it
        server.stop()


@pytest.fixture
def use_redis(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Celery]]:
    """Point this process at a Redis: ``use_redis(url, **env)`` sets REDIS_URL and the
    other variables, re-reads the settings and returns a Celery app for ``JobQueue``."""
    # The package's app reads celeryconfig lazily: make it read (and import) it now, from
    # the suite's environment, or it would keep this test's private Redis for good.
    assert default_app.conf.broker_url == get_settings().broker_url
    default_app.loader.import_default_modules()
    apps: list[Celery] = []

    def point(url: str, **env: str) -> Celery:
        monkeypatch.setenv("REDIS_URL", url)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        forget_settings()
        apps.append(app_from_environment())
        return apps[-1]

    yield point
    for app in apps:
        app.close()
    forget_settings()  # monkeypatch restores the environment right after this


@pytest.fixture
def start_workers(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start real ``celery worker`` processes with extra environment; killed at the end."""
    started: list[WorkerProcess] = []

    def start(env: dict[str, str], **kwargs: Any) -> WorkerProcess:
        name = kwargs.pop("name", f"fault{len(started) + 1}")
        worker = start_worker(tmp_path / f"{name}.log", env=env, name=name, **kwargs)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()


def runs(client: redis.Redis) -> list[dict[str, Any]]:
    """The records tests.support.jobs wrote on this Redis, one per try that started."""
    return [json.loads(item) for item in client.lrange(RUNS_KEY, 0, -1)]


def enqueue_records(queue: JobQueue, count: int) -> list[str]:
    """Half the jobs in one add_bulk, the rest one add each; returns their ids."""
    bulk = queue.add_bulk([{"name": "test-record", "data": {"n": n}} for n in range(count // 2)])
    return bulk + [queue.add("test-record", {"n": n}) for n in range(count // 2, count)]


def assert_each_completed_once(
    queue: JobQueue, client: redis.Redis, ids: list[str], timeout: float
) -> None:
    """Every job completes with its data as return value, each ran exactly once, and
    nothing else ran."""

    def all_completed() -> bool:
        jobs = [queue.get_job(job_id) for job_id in ids]
        return all(job is not None and job.state == "completed" for job in jobs)

    wait_until(all_completed, timeout, interval=0.1)
    time.sleep(0.5)  # a duplicate delivery would show up now
    tries = Counter(record["id"] for record in runs(client))
    assert tries == dict.fromkeys(ids, 1)
    for job_id in ids:
        job = queue.get_job(job_id)
        assert job is not None and job.returnvalue == job.data
    counts = queue.get_job_counts()
    assert counts["completed"] == len(ids) and counts["waiting"] == counts["active"] == 0


def test_a_password_protected_redis_runs_every_job_exactly_once(
    servers: Callable[..., RedisServer],
    use_redis: Callable[..., Celery],
    start_workers: Callable[..., WorkerProcess],
) -> None:
    server = servers("--requirepass", PASSWORD)
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=server.port).set("probe", 1)  # the password is really required
    url = server.url_with_password(PASSWORD)
    queue = JobQueue("notification", app=use_redis(url))
    ids = enqueue_records(queue, JOBS)
    assert len(set(ids)) == JOBS and queue.get_job_counts()["waiting"] == JOBS
    worker = start_workers({"REDIS_URL": url})
    assert_each_completed_once(queue, broker_client(), ids, timeout=30)
    assert PASSWORD not in worker.log()


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


def test_enqueue_fails_within_the_timeouts_when_nothing_listens(
    use_redis: Callable[..., Celery],
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    queue = JobQueue("email", app=use_redis(url, **FAST_FAILING))
    for enqueue in (
        lambda: queue.add("test-record", {"n": 1}),
        lambda: queue.add_bulk([{"name": "test-record", "data": {"n": 2}}]),
    ):
        started = time.monotonic()
        with pytest.raises(BrokerUnavailableError, match="could not be reached") as caught:
            enqueue()
        assert time.monotonic() - started < give_up_bound_s()
        assert isinstance(caught.value, CsgoflipJobsError)
        assert f"the queue Redis at {url} could not be reached" in str(caught.value)


def test_enqueue_fails_within_the_timeouts_when_redis_stops_and_recovers_after(
    servers: Callable[..., RedisServer], use_redis: Callable[..., Celery]
) -> None:
    server = servers()
    queue = JobQueue("email", app=use_redis(server.url, **FAST_FAILING))
    before = queue.add("test-record", {"n": 1})
    server.stop()
    for enqueue in (
        lambda: queue.add("test-record", {"n": 2}),
        lambda: queue.add_bulk([{"name": "test-record", "data": {"n": 3}}]),
    ):
        started = time.monotonic()
        with pytest.raises(BrokerUnavailableError, match="Connection refused"):
            enqueue()
        assert time.monotonic() - started < give_up_bound_s()
    server = servers(port=server.port)  # back, empty: the same client works again
    after = queue.add("test-record", {"n": 4})
    assert queue.get_job(after) is not None and queue.get_job(before) is None


def test_enqueue_fails_within_the_timeouts_when_redis_is_paused(
    servers: Callable[..., RedisServer], use_redis: Callable[..., Celery]
) -> None:
    """SIGSTOP: connections are accepted, nothing is answered. Each try costs a timeout
    (redis-py's nested retries used to make that (retries + 1) ** 2 of them), and a
    request already sent may still run when Redis resumes: the error says so, and
    enqueueing again with the same job_id stores each job once."""
    server = servers()
    queue = JobQueue("email", app=use_redis(server.url, **FAST_FAILING))
    queue.add("test-record", {"n": 1}, job_id="paused-1")
    os.kill(server.process.pid, signal.SIGSTOP)
    fresh = JobQueue("email", app=queue.app, client=make_client(server.url))  # a new pool
    enqueues = (
        lambda: queue.add("test-record", {"n": 2}, job_id="paused-2"),
        lambda: queue.add_bulk(
            [{"name": "test-record", "data": {"n": 3}, "opts": {"job_id": "paused-3"}}]
        ),
        lambda: fresh.add("test-record", {"n": 4}, job_id="paused-4"),
    )
    for enqueue in enqueues:
        started = time.monotonic()
        with pytest.raises(BrokerTimeoutError, match="may still store the job") as caught:
            enqueue()
        assert time.monotonic() - started < give_up_bound_s()
        assert isinstance(caught.value, BrokerUnavailableError)
    os.kill(server.process.pid, signal.SIGCONT)
    for enqueue in enqueues:
        enqueue()
    assert queue.get_job_counts()["waiting"] == 4
    assert all(queue.get_job(f"paused-{n}") is not None for n in range(1, 5))


BLOB = "x" * 100_000
"""Job data well under JOB_MAX_BYTES, about 250 kB in Redis per job: a dozen or so fill 4 MB."""


@pytest.fixture
def small_redis(
    servers: Callable[..., RedisServer], use_redis: Callable[..., Celery]
) -> tuple[RedisServer, JobQueue]:
    """A private Redis of 4 MB maxmemory under noeviction, and the notification queue on it."""
    server = servers("--maxmemory", "4mb", "--maxmemory-policy", "noeviction")
    return server, JobQueue("notification", app=use_redis(server.url))


def test_a_full_redis_refuses_jobs_clearly_and_keeps_every_accepted_one(
    small_redis: tuple[RedisServer, JobQueue],
    start_workers: Callable[..., WorkerProcess],
) -> None:
    server, queue = small_redis
    accepted: list[str] = []
    refused: dict[str, BrokerOutOfMemoryError] = {}
    deadline = time.monotonic() + 30
    for n in range(200):
        if len(refused) >= 3 or time.monotonic() > deadline:
            break
        try:
            accepted.append(queue.add("test-record", {"n": n, "blob": BLOB}, job_id=f"mem-{n}"))
        except BrokerOutOfMemoryError as exc:
            refused[f"mem-{n}"] = exc
    assert len(refused) == 3 and len(accepted) >= 3

    def bulk(n: int) -> dict[str, Any]:
        data = {"n": n, "blob": BLOB}
        return {"name": "test-record", "data": data, "opts": {"job_id": f"mem-bulk-{n}"}}

    with pytest.raises(BrokerOutOfMemoryError) as caught:
        queue.add_bulk([bulk(n) for n in range(2)])
    refused.update({f"mem-bulk-{n}": caught.value for n in range(2)})
    for error in refused.values():
        assert "out of memory" in str(error) and server.url in str(error)
    # Nothing accepted was dropped, nothing refused was half-written.
    assert queue.get_job_counts()["waiting"] == len(accepted)
    assert all(queue.get_job(job_id) is not None for job_id in accepted)
    assert all(queue.get_job(job_id) is None for job_id in refused)

    broker_client().config_set("maxmemory", 0)
    start_workers({"REDIS_URL": server.url})
    assert_each_completed_once(queue, broker_client(), accepted, timeout=30)
    assert all(queue.get_job(job_id) is None for job_id in refused)


def test_a_bulk_into_a_full_redis_says_which_jobs_it_stored(
    small_redis: tuple[RedisServer, JobQueue],
    start_workers: Callable[..., WorkerProcess],
) -> None:
    server, queue = small_redis
    batch = [{"name": "test-record", "data": {"n": n, "blob": BLOB}} for n in range(40)]
    with pytest.raises(BrokerOutOfMemoryError) as caught:
        queue.add_bulk(batch)
    error = caught.value
    assert error.stored_ids is not None and error.refused is not None
    assert 0 < len(error.stored_ids) < 40 and len(error.stored_ids) + len(error.refused) == 40
    assert f"{len(error.refused)} of 40 jobs refused" in str(error)
    stored, refused = len(error.stored_ids), len(error.refused)
    print(f"bulk of 40 into a full Redis: {stored} stored, {refused} refused")
    # Exactly the jobs it names are in Redis, whole.
    client = broker_client()
    held = {key.decode().rsplit(":", 1)[1] for key in client.scan_iter(match=job_key("*"))}
    assert held == set(error.stored_ids)
    kept = [queue.get_job(job_id) for job_id in error.stored_ids]
    assert sorted(job.data["n"] for job in kept if job) == sorted(
        set(range(40)) - set(error.refused)
    )
    assert queue.get_job_counts()["waiting"] == len(error.stored_ids)

    # The refused ones, added again once there is room: every job of the batch runs once.
    client.config_set("maxmemory", 0)
    again = queue.add_bulk([batch[i] for i in error.refused])
    start_workers({"REDIS_URL": server.url})
    assert_each_completed_once(queue, client, [*error.stored_ids, *again], timeout=30)


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

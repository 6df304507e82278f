"""Redis down, paused or out of memory when jobs are enqueued, each on a private
redis-server (with real workers where jobs run): every call fails within the
connection bounds with an error that says what happened, and nothing accepted is lost.

Nothing here touches the shared test Redis.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
from celery import Celery

from csgoflip_jobs import JobQueue
from csgoflip_jobs.errors import CsgoflipJobsError
from csgoflip_jobs.helpers.connection import broker_client, make_client
from csgoflip_jobs.helpers.errors import (
    BrokerOutOfMemoryError,
    BrokerTimeoutError,
    BrokerUnavailableError,
)
from csgoflip_jobs.keys import job_key
from tests.support.environment import FAST_FAILING, give_up_bound_s
from tests.support.exactly_once import assert_each_completed_once
from tests.support.redis_servers import RedisServer, free_port
from tests.support.workers import WorkerProcess

pytestmark = pytest.mark.fault


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
    held = {
        key.decode().rsplit(":", 1)[1]
        for key in client.scan_iter(match=job_key("notification", "*"))
    }
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

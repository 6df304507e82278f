"""A solo worker starts each try in the DELIVER that takes its message (no START).

What a separate START guarantees must still hold: a redelivered finished job is
skipped unrun, a worker dying mid-job counts a stall, and past the stall limit the
job fails without running again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from csgoflip_jobs import JobQueue, QueueEvents, keys
from tests.support.hot_path import commands_for_jobs
from tests.support.polling import wait_for_state, wait_until
from tests.support.workers import WorkerProcess

pytestmark = pytest.mark.slow

JOBS = 100


def test_a_solo_worker_sends_no_start_and_records_every_try_as_started(
    workers: Callable[..., WorkerProcess],
    runs: Callable[[], list[dict[str, Any]]],
    redis_url: str,
    redis_client: redis.Redis,
) -> None:
    queue = JobQueue("notification")
    workers(queues="notification", concurrency=1, pool="solo")
    counted, ids = commands_for_jobs(queue, runs, redis_url, JOBS)
    assert counted["START"] == 0 and counted["FINISH"] == JOBS, counted
    assert JOBS <= counted["DELIVER"] <= JOBS + 10, counted
    assert len(runs()) == JOBS + 1
    actives = {e["job_id"] for e in QueueEvents("notification").read(last_id="0", count=10_000)
               if e["event"] == "active"}  # fmt: skip
    assert set(ids) <= actives
    job = queue.get_job(ids[0])
    assert job is not None and job.processed_on and job.attempts_made == 1
    assert queue.get_job_counts()["active"] == 0


def test_a_finished_job_redelivered_to_a_solo_worker_is_skipped(
    workers: Callable[..., WorkerProcess],
    runs: Callable[[], list[dict[str, Any]]],
    redis_client: redis.Redis,
) -> None:
    queue = JobQueue("notification")
    job_id = queue.add("test-record", {"n": 1})
    message = redis_client.lindex("notification", 0)
    assert message is not None
    worker = workers(queues="notification", concurrency=1, pool="solo")
    wait_for_state(queue, job_id, "completed", 10)
    redis_client.lpush("notification", message)  # the same delivery, back on its queue
    redis_client.lpush(keys.ready_key("notification"), "1")
    wait_until(lambda: "was delivered again after it finished" in worker.log(), 10)
    wait_until(lambda: redis_client.hlen(keys.KOMBU_UNACKED_KEY) == 0, 5)
    assert len(runs()) == 1
    assert queue.get_job(job_id).state == "completed"  # type: ignore[union-attr]


def test_a_job_that_kills_its_solo_worker_stalls_then_fails_without_running_again(
    workers: Callable[..., WorkerProcess],
    runs: Callable[[], list[dict[str, Any]]],
) -> None:
    """MAX_STALLED_COUNT 1 (the default): it runs, kills its worker, is handed out
    again by the visibility sweep (stall 1, allowed), runs and kills again; the third
    delivery (stall 2) fails it unrun, and the worker goes on."""
    env = {"VISIBILITY_TIMEOUT_S": "5"}
    queue = JobQueue("email")
    job_id = queue.add("test-crash", {"n": 1})
    for attempt in range(1, 3):
        dying = workers(name=f"solo{attempt}", queues="email", concurrency=1, pool="solo", env=env)
        wait_until(lambda w=dying: w.process.poll() is not None, 30)  # type: ignore[misc]
        assert len(runs()) == attempt
    last = workers(name="solo3", queues="email", concurrency=1, pool="solo", env=env)
    job = wait_for_state(queue, job_id, "failed", 30)
    assert job.failed_reason == "JobStalledError: job stalled more than allowable limit"
    assert job.stalled == 2 and len(runs()) == 2
    good = queue.add("test-record", {"after": "crash"})
    wait_for_state(queue, good, "completed", 20)
    assert last.process.poll() is None
    stalls = [e for e in QueueEvents("email").read(last_id="0") if e["event"] == "stalled"]
    assert [e["count"] for e in stalls] == ["1", "2"]
    time.sleep(0.5)
    assert len(runs()) == 3  # the crash job twice, then the good one

"""Payment-grade delivery: late acks, redelivery after kill -9, no duplicates of long jobs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from csgoflip_jobs import JobQueue
from tests.polling import wait_for_state, wait_until
from tests.workers import WorkerProcess

pytestmark = [pytest.mark.slow, pytest.mark.fault]


def test_a_job_whose_worker_is_killed_mid_run_runs_again_within_60s(
    workers: Callable[..., WorkerProcess],
    runs: Callable[[], list[dict[str, Any]]],
) -> None:
    """Default settings: visibility timeout 30 s, heartbeat 5 s, restore sweep 5 s."""
    first = workers(name="doomed")
    queue = JobQueue("payment")
    job_id = queue.add("test-sleep", {"seconds": 3})
    wait_until(lambda: any(r.get("phase") == "start" for r in runs()), 10)
    first.kill()
    killed_at = time.time()
    workers(name="rescuer")
    job = wait_for_state(queue, job_id, "completed", 60)
    starts = [r for r in runs() if r.get("phase") == "start"]
    ends = [r for r in runs() if r.get("phase") == "end"]
    assert len(starts) == 2 and len(ends) == 1
    assert starts[1]["at"] - killed_at < 60
    assert job.attempts_made == 1  # a crash is not a failed try
    assert queue.get_job_counts()["active"] == 0


def test_a_job_longer_than_the_visibility_timeout_is_not_run_twice(
    workers: Callable[..., WorkerProcess],
    runs: Callable[[], list[dict[str, Any]]],
) -> None:
    """With a 6 s visibility timeout, a 14 s job and a second idle worker: one run only."""
    env = {"VISIBILITY_TIMEOUT_S": "6"}
    workers(name="busy", env=env, concurrency=1)
    queue = JobQueue("payment")
    job_id = queue.add("test-sleep", {"seconds": 14})
    wait_until(lambda: runs(), 10)
    workers(name="idle", env=env, concurrency=1)
    wait_for_state(queue, job_id, "completed", 30)
    assert len([r for r in runs() if r.get("phase") == "start"]) == 1


def test_sigterm_lets_the_running_job_finish(
    workers: Callable[..., WorkerProcess],
    runs: Callable[[], list[dict[str, Any]]],
) -> None:
    worker = workers(concurrency=1)
    queue = JobQueue("notification")
    job_id = queue.add("test-sleep", {"seconds": 2})
    wait_until(lambda: runs(), 10)
    worker.stop(timeout=20)
    assert worker.process.returncode == 0
    assert queue.get_job(job_id).state == "completed"  # type: ignore[union-attr]

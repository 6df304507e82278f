"""Tries and backoff through a real worker: BullMQ's 3 tries, 1 s then 2 s."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import redis

from csgoflip_jobs import JobQueue
from tests.support.polling import wait_for_state, wait_until
from tests.support.workers import WorkerProcess


def tries_of(runs: Callable[[], list[dict[str, Any]]], job_id: str) -> list[dict[str, Any]]:
    return [run for run in runs() if run["id"] == job_id]


def test_three_tries_with_exponential_gaps_of_1s_and_2s(
    workers: Callable[..., WorkerProcess],
    runs: Callable[[], list[dict[str, Any]]],
) -> None:
    workers()
    queue = JobQueue("notification")
    job_id = queue.add("test-flaky", {"succeed_on": 99})

    job = wait_for_state(queue, job_id, "failed", 15)
    tries = tries_of(runs, job_id)
    assert [t["attempt"] for t in tries] == [1, 2, 3]
    gaps = [later["at"] - earlier["at"] for earlier, later in itertools.pairwise(tries)]
    assert 0.95 <= gaps[0] <= 1.6, gaps
    assert 1.95 <= gaps[1] <= 2.6, gaps
    assert job.attempts_made == 3
    assert job.failed_reason == "RuntimeError: flaky failure on try 3"
    assert "flaky failure" in (job.stacktrace or "")
    assert [j.id for j in queue.get_failed()] == [job_id]


def test_a_job_that_succeeds_on_its_third_try_completes(
    workers: Callable[..., WorkerProcess],
    runs: Callable[[], list[dict[str, Any]]],
) -> None:
    workers()
    queue = JobQueue("notification")
    job_id = queue.add("test-flaky", {"succeed_on": 3})
    job = wait_for_state(queue, job_id, "completed", 15)
    assert job.returnvalue == "ok"
    assert job.attempts_made == 3
    assert len(tries_of(runs, job_id)) == 3
    assert queue.get_failed() == []


def test_per_job_attempts_and_fixed_backoff_override_the_defaults(
    workers: Callable[..., WorkerProcess],
    runs: Callable[[], list[dict[str, Any]]],
) -> None:
    workers()
    queue = JobQueue("email")
    job_id = queue.add(
        "test-flaky", {"succeed_on": 99}, attempts=4, backoff={"type": "fixed", "delay": 300}
    )
    wait_for_state(queue, job_id, "failed", 15)
    tries = tries_of(runs, job_id)
    assert [t["attempt"] for t in tries] == [1, 2, 3, 4]
    gaps = [later["at"] - earlier["at"] for earlier, later in itertools.pairwise(tries)]
    assert all(0.28 <= gap <= 0.9 for gap in gaps), gaps


def test_attempts_1_means_no_retry(
    workers: Callable[..., WorkerProcess],
    runs: Callable[[], list[dict[str, Any]]],
) -> None:
    workers()
    queue = JobQueue("email")
    job_id = queue.add("test-flaky", {}, attempts=1)
    wait_for_state(queue, job_id, "failed", 10)
    assert len(tries_of(runs, job_id)) == 1


def test_unrecoverable_error_fails_at_once(
    workers: Callable[..., WorkerProcess],
    runs: Callable[[], list[dict[str, Any]]],
    redis_client: redis.Redis,
) -> None:
    workers()
    queue = JobQueue("payment")
    job_id = queue.add("test-unrecoverable", {"withdrawal_id": 7})
    job = wait_for_state(queue, job_id, "failed", 10)
    assert job.failed_reason == "UnrecoverableError: this job can never succeed"
    assert job.attempts_made == 1
    assert job.data == {"withdrawal_id": 7}
    # Give a wrongly scheduled retry (1 s backoff) time to show up.
    wait_until(lambda: queue.get_job_counts()["delayed"] == 0, 2)
    assert len(tries_of(runs, job_id)) == 1
    assert redis_client.zcard("csgoflip:queue:payment:delayed") == 0


def test_data_of_the_wrong_shape_fails_once_as_unrecoverable(
    workers: Callable[..., WorkerProcess],
    runs: Callable[[], list[dict[str, Any]]],
) -> None:
    """A message that skipped JobQueue's checks (another producer) still cannot retry."""
    from csgoflip_jobs import app

    workers()
    queue = JobQueue("email")
    job_id = app.send_task("test-sleep", kwargs={"seconds": 0, "nope": 1}, queue="email").id
    job = wait_for_state(queue, job_id, "failed", 10)
    assert job.failed_reason is not None
    assert job.failed_reason.startswith("UnrecoverableError: bad job data for test-sleep")
    assert job.attempts_made == 1
    assert runs() == []

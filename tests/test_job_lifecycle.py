"""A job's life as BullMQ shows it: pause and resume, progress and logs, waiting for the
outcome, the event stream, per-minute metrics, the stall limit and Celery's retry."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from csgoflip_jobs import JobFailedError, JobNotFoundError, JobQueue, QueueEvents
from tests.support.polling import wait_for_state, wait_until
from tests.support.workers import WorkerProcess


def tries(runs: Callable[[], list[dict[str, Any]]], job_id: str) -> list[dict[str, Any]]:
    return [run for run in runs() if run["id"] == job_id]


def test_a_paused_queue_starts_nothing_even_after_a_worker_restart(
    workers: Callable[..., WorkerProcess],
    runs: Callable[[], list[dict[str, Any]]],
) -> None:
    queue = JobQueue("notification")
    assert queue.pause() is True and queue.pause() is False and queue.is_paused()
    worker = workers(name="paused1", queues="notification")
    waiting = queue.add("test-record", {"n": 1})
    delayed = queue.add("test-record", {"n": 2}, delay=300)
    wait_for_state(queue, delayed, "waiting", 10)  # delayed jobs still come due
    worker.stop()
    workers(name="paused2", queues="notification")  # a restarted worker stays paused
    time.sleep(2.0)
    assert runs() == []
    counts = queue.get_job_counts()
    assert (counts["waiting"], counts["paused"]) == (0, 2)
    assert queue.get_waiting() == [] and len(queue.get_jobs(["paused"])) == 2
    assert queue.resume() is True and not queue.is_paused()
    wait_for_state(queue, waiting, "completed", 10)
    wait_for_state(queue, delayed, "completed", 10)


def test_a_job_a_worker_already_holds_does_not_start_while_paused(
    workers: Callable[..., WorkerProcess],
    runs: Callable[[], list[dict[str, Any]]],
    redis_client: redis.Redis,
) -> None:
    queue = JobQueue("notification")
    first, held = (queue.add("test-sleep", {"seconds": 2}) for _ in range(2))
    # One process with a prefetch of two: the second job waits inside the worker.
    workers(concurrency=1, queues="notification", env={"WORKER_PREFETCH_MULTIPLIER": "2"})
    wait_for_state(queue, first, "active", 10)
    wait_until(lambda: redis_client.hlen("unacked") == 2, 10)
    queue.pause()
    wait_for_state(queue, first, "completed", 10)
    time.sleep(1.5)  # the held job would have started by now
    assert queue.get_job(held).state == "waiting"  # type: ignore[union-attr]
    assert [run["id"] for run in runs() if run.get("phase") == "start"] == [first]
    queue.resume()
    wait_for_state(queue, held, "completed", 10)


def test_progress_and_logs_are_read_back_and_go_with_the_job(
    workers: Callable[..., WorkerProcess],
) -> None:
    workers(queues="email")
    queue = JobQueue("email")
    job_id = queue.add("test-progress", {"steps": 3})
    job = wait_for_state(queue, job_id, "completed", 10)
    assert job.progress == 100
    assert queue.get_job_logs(job_id) == ["step 1 of 3", "step 2 of 3", "step 3 of 3"]
    assert queue.get_job_logs(job_id, 1, 1) == ["step 2 of 3"]
    events = QueueEvents("email").read(last_id="0")
    progress = [e["data"] for e in events if e["event"] == "progress"]
    assert progress == [{"step": 1, "of": 3}, {"step": 2, "of": 3}, {"step": 3, "of": 3}, 100]
    assert queue.remove(job_id)
    assert queue.get_job_logs(job_id) == []


def test_wait_until_finished_for_every_outcome(
    workers: Callable[..., WorkerProcess],
) -> None:
    workers(queues="notification")
    queue = JobQueue("notification")
    assert queue.wait_until_finished(queue.add("test-record", {"n": 7}), 10) == {"n": 7}
    failing = queue.add("test-unrecoverable", {})
    with pytest.raises(JobFailedError) as failed:
        queue.wait_until_finished(failing, 10)
    assert failed.value.failed_reason == "UnrecoverableError: this job can never succeed"
    slow = queue.add("test-sleep", {"seconds": 3})
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="still"):
        queue.wait_until_finished(slow, 1)
    assert 0.9 <= time.monotonic() - started < 2.5
    # Finished before the call: read from its record at once.
    wait_for_state(queue, slow, "completed", 10)
    started = time.monotonic()
    assert queue.wait_until_finished(slow, 10) == "slept"
    assert time.monotonic() - started < 0.5
    with pytest.raises(JobNotFoundError, match="never added, removed, or trimmed"):
        queue.wait_until_finished("no-such-job", 1)


def test_events_are_durable_and_a_late_listener_reads_them_from_the_start(
    workers: Callable[..., WorkerProcess],
) -> None:
    workers(queues="email")
    queue = JobQueue("email")
    job_id = queue.add("test-record", {"n": 1})
    queue.wait_until_finished(job_id, 10)
    events = [e for e in QueueEvents("email").read(last_id="0") if e["job_id"] == job_id]
    assert [e["event"] for e in events] == ["added", "waiting", "active", "completed"]
    assert events[-1]["returnvalue"] == {"n": 1}
    assert all(e["id"] for e in events)
    # A listener resumes after any id, and gets what happens from then on.
    seen: list[dict[str, Any]] = []
    listener = QueueEvents("email").listen(last_id=events[-1]["id"], block_s=0.2)

    def follow() -> None:
        for event in listener:
            seen.append(event)
            if event["event"] == "completed":
                return

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    second = queue.add("test-record", {"n": 2})
    thread.join(10)
    assert [e["event"] for e in seen] == ["added", "waiting", "active", "completed"]
    assert {e["job_id"] for e in seen} == {second}


def test_metrics_count_the_jobs_of_the_current_minute(
    workers: Callable[..., WorkerProcess],
) -> None:
    workers(queues="notification")
    queue = JobQueue("notification")
    minute = int(time.time() // 60)
    done = [queue.add("test-record", {"n": n}) for n in range(5)]
    failed = queue.add("test-unrecoverable", {})
    for job_id in done:
        wait_for_state(queue, job_id, "completed", 10)
    wait_for_state(queue, failed, "failed", 10)
    completed = queue.get_metrics("completed")
    if int(time.time() // 60) == minute:
        assert completed["data"][0] == 5
    else:  # the jobs straddled a minute boundary
        assert sum(completed["data"][:2]) == 5
    assert completed["total"] == 5 and completed["count"] >= 1
    assert sum(queue.get_metrics("failed")["data"][:2]) == 1


def test_a_job_that_kills_its_worker_fails_after_its_stalls_and_the_worker_goes_on(
    workers: Callable[..., WorkerProcess],
    runs: Callable[[], list[dict[str, Any]]],
) -> None:
    worker = workers(queues="email", concurrency=1)
    queue = JobQueue("email")
    crashing = queue.add("test-crash", {"n": 1})
    job = wait_for_state(queue, crashing, "failed", 60)
    assert job.failed_reason == "JobStalledError: job stalled more than allowable limit"
    assert job.stalled == 2
    assert len(tries(runs, crashing)) == 2  # ran, stalled once (allowed), ran, stalled: failed
    good = queue.add("test-record", {"after": "crash"})
    wait_for_state(queue, good, "completed", 20)
    assert worker.process.poll() is None
    stalls = [e for e in QueueEvents("email").read(last_id="0") if e["event"] == "stalled"]
    assert [e["count"] for e in stalls] == ["1", "2"]


def test_celery_self_retry_runs_again_from_the_delayed_set_and_completes(
    workers: Callable[..., WorkerProcess],
    runs: Callable[[], list[dict[str, Any]]],
) -> None:
    workers(queues="notification")
    queue = JobQueue("notification")
    job_id = queue.add("test-celery-retry", {"succeed_after": 2, "countdown": 1.0})
    wait_until(lambda: len(tries(runs, job_id)) == 1, 10)
    wait_until(lambda: queue.get_job(job_id).state == "delayed", 5)  # type: ignore[union-attr]
    job = wait_for_state(queue, job_id, "completed", 20)
    made = tries(runs, job_id)
    assert [run["data"]["retries"] for run in made] == [0, 1, 2]
    gaps = [later["at"] - earlier["at"] for earlier, later in itertools.pairwise(made)]
    assert all(0.95 <= gap <= 2.0 for gap in gaps), gaps
    assert (job.returnvalue, job.attempts_made) == ("ok", 3)


def test_autoretry_stops_at_celerys_max_retries_within_the_jobs_attempts(
    workers: Callable[..., WorkerProcess],
    runs: Callable[[], list[dict[str, Any]]],
) -> None:
    """attempts=3 allows three tries; max_retries=1 allows one retry: two tries run."""
    workers(queues="email")
    queue = JobQueue("email")
    job_id = queue.add("test-autoretry", {})
    job = wait_for_state(queue, job_id, "failed", 20)
    assert job.failed_reason == "RuntimeError: always fails"
    time.sleep(1.0)  # a third try would show up by now
    assert len(tries(runs, job_id)) == 2

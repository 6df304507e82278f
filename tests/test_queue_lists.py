"""BullMQ's listing and changing calls on JobQueue: lists and their order, remove,
promote, change_delay, change_priority, drain, clean, obliterate."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from csgoflip_jobs import JobOptionsError, JobQueue, JobStateError, keys
from tests.support.polling import nothing_left, wait_for_state
from tests.support.workers import WorkerProcess


def ids(jobs: list[Any]) -> list[str]:
    return [job.id for job in jobs]


def test_waiting_jobs_are_listed_in_the_order_they_will_run(redis_client: redis.Redis) -> None:
    queue = JobQueue("email")
    first = queue.add("test-record", {"n": 1})
    low = queue.add("test-record", {"n": 2}, priority=2)
    second = queue.add("test-record", {"n": 3})
    high = queue.add("test-record", {"n": 4}, priority=1)
    # Jobs without priority first (in order), then priority 1, then 2: BullMQ's order.
    assert ids(queue.get_waiting()) == [first, second, high, low]
    assert ids(queue.get_waiting(1, 2)) == [second, high]
    assert ids(queue.get_jobs(["waiting"])) == [low, high, second, first]  # asc=False
    assert [job.data["n"] for job in queue.get_waiting(0, 0)] == [1]


def test_delayed_active_and_finished_jobs_are_listed_in_bullmqs_order(
    workers: Callable[..., WorkerProcess],
) -> None:
    queue = JobQueue("notification")
    later = queue.add("test-record", {"n": 1}, delay=60_000)
    sooner = queue.add("test-record", {"n": 2}, delay=30_000)
    latest = queue.add("test-record", {"n": 3}, delay=90_000)
    assert ids(queue.get_delayed()) == [sooner, later, latest]
    assert ids(queue.get_jobs(["delayed"], asc=False)) == [latest, later, sooner]
    workers(queues="notification", concurrency=2)
    one = queue.add("test-sleep", {"seconds": 3})
    wait_for_state(queue, one, "active", 10)
    two = queue.add("test-sleep", {"seconds": 3})
    wait_for_state(queue, two, "active", 10)
    assert ids(queue.get_active()) == [one, two]  # oldest start first
    assert ids(queue.get_jobs(["active", "delayed"], 0, 0)) == [two, latest]
    wait_for_state(queue, two, "completed", 10)
    assert ids(queue.get_completed()) == [two, one]  # newest first


def test_a_removed_delayed_job_never_runs(
    workers: Callable[..., WorkerProcess],
    runs: Callable[[], list[dict[str, Any]]],
    redis_client: redis.Redis,
) -> None:
    workers(queues="payment")
    queue = JobQueue("payment")
    delayed = queue.add("test-record", {"withdrawal_id": 1}, delay=1000)
    kept = queue.add("test-record", {"withdrawal_id": 2}, delay=1000)
    assert queue.remove(delayed) is True
    assert queue.get_job(delayed) is None
    assert queue.remove(delayed) is False  # unknown now
    wait_for_state(queue, kept, "completed", 10)
    time.sleep(1.0)  # a wrongly kept copy would be due by now
    assert [run["id"] for run in runs()] == [kept]


def test_a_waiting_job_is_taken_off_its_list_and_a_running_one_is_not_removed(
    workers: Callable[..., WorkerProcess], redis_client: redis.Redis
) -> None:
    queue = JobQueue("email")
    waiting = queue.add("test-record", {"n": 1}, priority=3)
    assert queue.remove(waiting) is True
    assert redis_client.llen(keys.priority_list_key("email", 3)) == 0
    assert queue.get_job_counts()["waiting"] == 0
    workers(queues="email", concurrency=1)
    running = queue.add("test-sleep", {"seconds": 2})
    wait_for_state(queue, running, "active", 10)
    assert queue.remove(running) is False
    finished = wait_for_state(queue, running, "completed", 10)
    assert queue.remove(finished.id) is True
    assert queue.get_job(running) is None


def test_promote_and_change_delay_make_a_delayed_job_run_now(
    workers: Callable[..., WorkerProcess],
) -> None:
    workers(queues="notification")
    queue = JobQueue("notification")
    promoted = queue.add("test-record", {"n": 1}, delay=60_000)
    shortened = queue.add("test-record", {"n": 2}, delay=60_000)
    assert queue.promote(promoted) is True
    assert queue.change_delay(shortened, 300) is True
    wait_for_state(queue, promoted, "completed", 10)
    wait_for_state(queue, shortened, "completed", 10)
    assert queue.promote(promoted) is False  # not delayed any more
    assert queue.change_delay(promoted, 10) is False
    with pytest.raises(JobOptionsError, match="delay_ms must be a whole number from 0 to"):
        queue.change_delay(shortened, -1)


def test_change_priority_moves_a_waiting_job_in_the_order(redis_client: redis.Redis) -> None:
    queue = JobQueue("email")
    urgent_later = queue.add("test-record", {"n": 1})
    normal = queue.add("test-record", {"n": 2}, priority=5)
    delayed = queue.add("test-record", {"n": 3}, delay=60_000)
    assert queue.change_priority(urgent_later, 9) is True
    assert ids(queue.get_waiting()) == [normal, urgent_later]
    assert queue.get_job(urgent_later).opts["priority"] == 9  # type: ignore[union-attr]
    assert queue.change_priority(delayed, 1) is True
    assert queue.promote(delayed) is True
    assert ids(queue.get_waiting()) == [delayed, normal, urgent_later]
    assert queue.change_priority("no-such-job", 1) is False


def test_drain_removes_waiting_jobs_and_on_request_delayed_ones(
    redis_client: redis.Redis,
) -> None:
    queue = JobQueue("email")
    queue.add_bulk([{"name": "test-record", "data": {"n": n}} for n in range(3)])
    delayed = queue.add("test-record", {"n": 9}, delay=60_000)
    assert queue.drain() == 3
    counts = queue.get_job_counts()
    assert (counts["waiting"], counts["delayed"]) == (0, 1)
    assert queue.drain(delayed=True) == 1
    assert queue.get_job(delayed) is None and nothing_left(queue)


def test_clean_removes_what_is_older_than_the_grace(
    workers: Callable[..., WorkerProcess], redis_client: redis.Redis
) -> None:
    workers(queues="notification")
    queue = JobQueue("notification")
    done = [queue.add("test-record", {"n": n}) for n in range(3)]
    for job_id in done:
        wait_for_state(queue, job_id, "completed", 10)
    assert queue.clean(60_000, 100, "completed") == []  # all younger than a minute
    newest, *oldest_two = ids(queue.get_completed())
    assert sorted(queue.clean(0, 2, "completed")) == sorted(oldest_two)
    assert ids(queue.get_completed()) == [newest]
    waiting = JobQueue("email")
    old = waiting.add("test-record", {"n": 1})
    time.sleep(0.05)
    assert waiting.clean(0, 10, "waiting") == [old]
    assert waiting.get_job(old) is None
    with pytest.raises(JobOptionsError, match="clean takes"):
        queue.clean(0, 1, "active")


def test_obliterate_refuses_running_jobs_unless_forced(
    workers: Callable[..., WorkerProcess], redis_client: redis.Redis
) -> None:
    worker = workers(queues="email", concurrency=1)
    queue = JobQueue("email")
    running = queue.add("test-sleep", {"seconds": 3})
    queue.add("test-record", {"n": 1}, delay=60_000)
    queue.add("test-record", {"n": 2})
    wait_for_state(queue, running, "active", 10)
    with pytest.raises(JobStateError, match="has running jobs"):
        queue.obliterate()
    worker.kill()
    assert queue.obliterate(force=True) == 3
    assert list(redis_client.scan_iter("csgoflip:queue:email:*")) == []
    assert list(redis_client.scan_iter("csgoflip:job:*")) == []
    assert nothing_left(queue)


def test_a_failed_job_that_cannot_be_enqueued_again_stays_failed(
    workers: Callable[..., WorkerProcess],
) -> None:
    """retry_failed checks the job before removing it: a refused retry (here its task is
    not registered in this process) keeps the failed job instead of dropping it."""
    workers(queues="email", concurrency=1)
    queue = JobQueue("email")
    job_id = queue.add("test-unrecoverable", {"n": 1})
    failed = wait_for_state(queue, job_id, "failed", 30)
    with pytest.raises(JobOptionsError, match="no task is registered"):
        queue.retry_failed(dataclasses.replace(failed, name="no-such-task"))
    assert queue.get_job(job_id) == failed
    assert queue.retry_failed(failed) == job_id
    assert queue.get_job(job_id).state in ("waiting", "active", "failed")  # type: ignore[union-attr]

"""Delayed jobs are durable and on time; priorities follow BullMQ's order."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis

from csgoflip_jobs import JobQueue
from tests.support.polling import wait_for_state, wait_until
from tests.support.workers import WorkerProcess


def test_a_delayed_job_does_not_run_early(
    workers: Callable[..., WorkerProcess],
    runs: Callable[[], list[dict[str, Any]]],
) -> None:
    workers()
    queue = JobQueue("notification")
    sent_at = time.time()
    job_id = queue.add("test-record", {"n": 1}, delay=1500)
    assert queue.get_job(job_id).state == "delayed"  # type: ignore[union-attr]
    assert queue.get_job_counts()["delayed"] == 1
    ran = wait_until(runs, 10)
    assert 1.45 <= ran[0]["at"] - sent_at <= 2.5
    assert queue.get_job_counts()["delayed"] == 0


def test_a_delayed_job_survives_every_worker_killed_and_runs_once(
    workers: Callable[..., WorkerProcess],
    runs: Callable[[], list[dict[str, Any]]],
    redis_client: redis.Redis,
) -> None:
    first = workers(name="first")
    queue = JobQueue("payment")
    sent_at = time.time()
    job_id = queue.add("test-record", {"withdrawal_id": 9}, delay=3000, priority=1)
    time.sleep(1.0)
    first.kill()  # kill -9 of the only worker while the job waits
    assert redis_client.zscore("csgoflip:queue:payment:delayed", job_id) is not None
    time.sleep(2.5)  # now past due with no worker running
    assert runs() == []
    assert queue.get_job(job_id).state == "delayed"  # type: ignore[union-attr]

    workers(name="second")
    ran = wait_until(runs, 15)
    wait_for_state(queue, job_id, "completed", 10)
    time.sleep(1.0)  # a duplicate would show up by now
    assert len(runs()) == 1
    assert ran[0]["at"] - sent_at >= 3.0


def test_many_delayed_jobs_run_once_each_with_two_workers(
    workers: Callable[..., WorkerProcess],
    runs: Callable[[], list[dict[str, Any]]],
) -> None:
    workers(name="a")
    workers(name="b")
    queue = JobQueue("email")
    sent_at = time.time()
    ids = queue.add_bulk(
        [{"name": "test-record", "data": {"n": n}, "opts": {"delay": 500}} for n in range(200)]
    )
    wait_until(lambda: len(runs()) >= 200, 20)
    time.sleep(0.5)
    done = runs()
    assert sorted(r["id"] for r in done) == sorted(ids)
    assert min(r["at"] for r in done) - sent_at >= 0.5


def test_jobs_without_priority_go_first_then_1_is_highest(
    workers: Callable[..., WorkerProcess],
    runs: Callable[[], list[dict[str, Any]]],
) -> None:
    queue = JobQueue("notification")
    plan: list[int | None] = [5, None, 1, 3, None, 9, 1, 20, 2]
    for n, priority in enumerate(plan):
        queue.add("test-record", {"n": n}, priority=priority)
    workers(concurrency=1)
    wait_until(lambda: len(runs()) == len(plan), 15)
    order = [plan[run["data"]["n"]] for run in runs()]
    # None first (FIFO), then 1, 1, 2, 3, 5, and 9 and 20 share the lowest level.
    assert order == [None, None, 1, 1, 2, 3, 5, 9, 20]


def test_priority_zero_counts_as_no_priority(
    workers: Callable[..., WorkerProcess],
    runs: Callable[[], list[dict[str, Any]]],
) -> None:
    queue = JobQueue("notification")
    queue.add("test-record", {"n": 0}, priority=1)
    queue.add("test-record", {"n": 1}, priority=0)
    workers(concurrency=1)
    wait_until(lambda: len(runs()) == 2, 10)
    assert [run["data"]["n"] for run in runs()] == [1, 0]

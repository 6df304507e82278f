"""Retention: newest 100 completed and 1000 failed per queue; nothing else stays."""

from __future__ import annotations

from collections.abc import Callable

import redis

from csgoflip_jobs import JobQueue
from csgoflip_jobs.keys import CELERY_RESULT_KEY_PREFIX, job_key
from tests.support.polling import nothing_left, wait_for_state, wait_until
from tests.support.workers import WorkerProcess


def result_keys(client: redis.Redis) -> set[str]:
    return {k.decode() for k in client.scan_iter(match=f"{CELERY_RESULT_KEY_PREFIX}*", count=1000)}


def job_keys(client: redis.Redis) -> set[str]:
    return {k.decode() for k in client.scan_iter(match="csgoflip:queue:*:job:*", count=1000)}


def test_150_jobs_leave_exactly_the_newest_100_completed(
    workers: Callable[..., WorkerProcess],
    redis_client: redis.Redis,
) -> None:
    queue = JobQueue("notification")
    ids = queue.add_bulk([{"name": "test-record", "data": {"n": n}} for n in range(150)])
    # One worker process: the finish order is the enqueue order.
    workers(concurrency=1)
    wait_until(lambda: nothing_left(queue), 30)
    wait_until(lambda: len(result_keys(redis_client)) == 100, 10)

    completed = queue.get_completed()
    assert [job.id for job in completed] == ids[:-101:-1]  # newest first
    assert [job.data["n"] for job in completed[:3]] == [149, 148, 147]
    assert result_keys(redis_client) == {CELERY_RESULT_KEY_PREFIX + i for i in ids[50:]}
    assert job_keys(redis_client) == {job_key("notification", i) for i in ids[50:]}
    assert all(queue.get_job(i) is None for i in ids[:50])
    # Kept jobs do not expire.
    assert redis_client.ttl(job_key("notification", ids[-1])) == -1
    assert redis_client.ttl(CELERY_RESULT_KEY_PREFIX + ids[-1]) == -1
    assert queue.get_job_counts()["completed"] == 100


def test_failed_jobs_are_capped_at_1000(
    workers: Callable[..., WorkerProcess],
    redis_client: redis.Redis,
) -> None:
    queue = JobQueue("email")
    ids = queue.add_bulk([{"name": "test-unrecoverable", "data": {"n": n}} for n in range(1020)])
    workers(concurrency=2)
    # One snapshot: jobs a worker holds but has not started count as waiting.
    done = {"waiting": 0, "delayed": 0, "active": 0, "completed": 0, "failed": 1000, "paused": 0}
    wait_until(lambda: queue.get_job_counts() == done, 60, interval=0.2)
    kept = {job.id for job in queue.get_failed()}
    assert len(kept) == 1000
    assert len(job_keys(redis_client)) == 1000
    assert result_keys(redis_client) == {CELERY_RESULT_KEY_PREFIX + i for i in kept}
    # The 20 trimmed ones are among the first few dozen enqueued (two processes
    # finish a little out of order), never among the last ones.
    trimmed = set(ids) - kept
    assert len(trimmed) == 20 and trimmed <= set(ids[:60])


def test_per_job_remove_on_complete_overrides_the_queue_default(
    workers: Callable[..., WorkerProcess],
    redis_client: redis.Redis,
) -> None:
    queue = JobQueue("notification")
    workers(concurrency=1)
    gone = queue.add("test-record", {"n": 1}, remove_on_complete=True)
    kept = queue.add("test-record", {"n": 2}, remove_on_complete=False)
    wait_until(lambda: queue.get_job_counts()["completed"] == 1 and queue.get_job(gone) is None, 10)
    assert [job.id for job in queue.get_completed()] == [kept]
    assert not redis_client.exists(CELERY_RESULT_KEY_PREFIX + gone)

    capped = [queue.add("test-record", {"n": n}, remove_on_complete=3) for n in range(5)]
    wait_for_state(queue, capped[-1], "completed", 10)
    assert [job.id for job in queue.get_completed()] == capped[:-4:-1]


def test_remove_on_fail_count(workers: Callable[..., WorkerProcess]) -> None:
    queue = JobQueue("payment")
    workers(concurrency=1)
    ids = [queue.add("test-unrecoverable", {}, remove_on_fail=2) for _ in range(4)]
    wait_for_state(queue, ids[-1], "failed", 10)
    assert [job.id for job in queue.get_failed()] == ids[:-3:-1]


def test_remove_deletes_a_finished_job_and_its_result_and_frees_its_id(
    workers: Callable[..., WorkerProcess], redis_client: redis.Redis
) -> None:
    queue = JobQueue("notification")
    assert queue.remove("no-such-job") is False
    workers(concurrency=1)
    done = queue.add("test-record", {"n": 2}, job_id="again")
    wait_for_state(queue, done, "completed", 10)
    assert queue.remove(done) is True
    assert queue.get_job(done) is None and queue.get_completed() == []
    assert not redis_client.exists(CELERY_RESULT_KEY_PREFIX + done)
    assert queue.add("test-record", {"n": 3}, job_id="again") == "again"  # the id is free again
    wait_for_state(queue, "again", "completed", 10)

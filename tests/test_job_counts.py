"""get_job_counts: one snapshot in which every job the queue holds is counted once."""

from __future__ import annotations

from collections.abc import Callable

import redis

from csgoflip_jobs import JobQueue, keys
from tests.polling import wait_until
from tests.workers import WorkerProcess


def test_a_job_in_a_workers_prefetch_buffer_counts_as_waiting(
    workers: Callable[..., WorkerProcess],
    redis_client: redis.Redis,
) -> None:
    queue = JobQueue("notification")
    ids = [queue.add("test-sleep", {"seconds": 4}) for _ in range(3)]
    # One process with a prefetch of two: one job runs, the next waits in the worker.
    workers(concurrency=1, env={"WORKER_PREFETCH_MULTIPLIER": "2"})
    wait_until(
        lambda: (
            queue.get_job_counts()["active"] == 1 and redis_client.hlen(keys.KOMBU_UNACKED_KEY) == 2
        ),
        15,
        interval=0.05,
    )
    counts = queue.get_job_counts()
    assert redis_client.llen(keys.priority_list_key("notification", 0)) == 1  # only one is listed
    assert counts == {"waiting": 2, "delayed": 0, "active": 1, "completed": 0, "failed": 0}
    states = [queue.get_job(i).state for i in ids]  # type: ignore[union-attr]
    assert sorted(states) == ["active", "waiting", "waiting"]


def test_an_unacked_entry_of_another_queue_or_a_finished_job_is_not_waiting(
    redis_client: redis.Redis,
) -> None:
    queue = JobQueue("notification")
    done, other = queue.add("test-record", {"n": 1}), queue.add("test-record", {"n": 2})
    redis_client.hset(keys.job_key(done), "state", "completed")
    redis_client.delete(keys.priority_list_key("notification", 0))  # as if both were taken
    entry = '[{"body": "", "headers": {"id": "%s"}, "properties": {}}, "", "%s"]'
    redis_client.hset(
        keys.KOMBU_UNACKED_KEY,
        mapping={
            "finished": entry % (done, "notification"),
            "other-queue": entry % (other, "email"),
            "not-json": 'garbage,"notification"]',
        },
    )
    assert queue.get_job_counts()["waiting"] == 0

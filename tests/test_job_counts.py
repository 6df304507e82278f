"""get_job_counts: one snapshot in which every job the queue holds is counted once."""

from __future__ import annotations

import json
from collections.abc import Callable

import redis

from csgoflip_jobs import JobQueue, keys
from csgoflip_jobs.engine.enqueue import JOB_HEADER
from tests.support.polling import wait_until
from tests.support.workers import WorkerProcess


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
    assert counts == {
        "waiting": 2,
        "delayed": 0,
        "active": 1,
        "completed": 0,
        "failed": 0,
        "paused": 0,
    }
    states = [queue.get_job(i).state for i in ids]  # type: ignore[union-attr]
    assert sorted(states) == ["active", "waiting", "waiting"]


def unacked_entry(
    job_id: str,
    queue: str,
    tag: str,
    attempt: int = 1,
    compact: bool = False,
    body: str = "",
) -> str:
    """A kombu unacked entry [message, exchange, routing key] for one delivery of a job;
    kombu writes ", " separators, the DELIVER script none."""
    headers = {"id": job_id, JOB_HEADER: {"attempt": attempt}}
    message = {"body": body, "headers": headers, "properties": {"delivery_tag": tag}}
    return json.dumps([message, "", queue], separators=(",", ":") if compact else (", ", ": "))


def test_which_unacked_entries_count_as_waiting(redis_client: redis.Redis) -> None:
    queue = JobQueue("notification")
    first, second, done, other, retried, legacy, legacy_retried = (
        queue.add("test-record", {"n": n}) for n in range(7)
    )

    def tag(job_id: str) -> str:
        return redis_client.hget(keys.job_key("notification", job_id), "tag").decode()  # type: ignore[union-attr]

    redis_client.hset(keys.job_key("notification", done), "state", "completed")
    # A later try was queued: the record holds its message's tag, the entry an older one.
    retried_tag = tag(retried)
    redis_client.hset(
        keys.job_key("notification", retried), mapping={"attempt": "2", "tag": "next-try"}
    )
    # Records written before delivery tags were kept: the try number decides.
    for job_id in (legacy, legacy_retried):
        redis_client.hdel(keys.job_key("notification", job_id), "tag")
    redis_client.hset(keys.job_key("notification", legacy_retried), "attempt", "2")
    redis_client.delete(keys.priority_list_key("notification", 0))  # as if all were taken
    redis_client.hset(
        keys.KOMBU_UNACKED_KEY,
        mapping={
            "first": unacked_entry(first, "notification", tag(first)),
            "first-again": unacked_entry(first, "notification", tag(first), compact=True),
            "second": unacked_entry(second, "notification", tag(second), compact=True),
            "finished": unacked_entry(done, "notification", tag(done)),
            # Another queue's entry, with this queue's name in it elsewhere.
            "other-queue": unacked_entry(other, "email", tag(other), body="notification"),
            "earlier-try": unacked_entry(retried, "notification", retried_tag),
            "legacy": unacked_entry(legacy, "notification", "t1"),
            "legacy-earlier-try": unacked_entry(legacy_retried, "notification", "t2", attempt=1),
            "not-json": 'garbage,"notification"]',
            "not-a-list": '"notification"',
        },
    )
    # first (once, though held twice), second and legacy; none of the others.
    assert queue.get_job_counts()["waiting"] == 3

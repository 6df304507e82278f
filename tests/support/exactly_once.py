"""Checks of jobs run on a private Redis: each completed, each ran exactly once."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import redis

from csgoflip_jobs import JobQueue
from tests.support.jobs import RUNS_KEY
from tests.support.polling import wait_until


def runs_on(client: redis.Redis) -> list[dict[str, Any]]:
    """The records tests.support.jobs wrote on this Redis, one per try that started."""
    return [json.loads(item) for item in client.lrange(RUNS_KEY, 0, -1)]


def enqueue_records(queue: JobQueue, count: int) -> list[str]:
    """Half the jobs in one add_bulk, the rest one add each; returns their ids."""
    bulk = queue.add_bulk([{"name": "test-record", "data": {"n": n}} for n in range(count // 2)])
    return bulk + [queue.add("test-record", {"n": n}) for n in range(count // 2, count)]


def assert_each_completed_once(
    queue: JobQueue, client: redis.Redis, ids: list[str], timeout: float
) -> None:
    """Every job completes with its data as return value, each ran exactly once, and
    nothing else ran."""

    def all_completed() -> bool:
        jobs = [queue.get_job(job_id) for job_id in ids]
        return all(job is not None and job.state == "completed" for job in jobs)

    wait_until(all_completed, timeout, interval=0.1)
    time.sleep(0.5)  # a duplicate delivery would show up now
    tries = Counter(record["id"] for record in runs_on(client))
    assert tries == dict.fromkeys(ids, 1)
    for job_id in ids:
        job = queue.get_job(job_id)
        assert job is not None and job.returnvalue == job.data
    counts = queue.get_job_counts()
    assert counts["completed"] == len(ids) and counts["waiting"] == counts["active"] == 0

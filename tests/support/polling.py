"""Wait for a condition with a deadline, instead of fixed sleeps."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import httpx

from csgoflip_jobs import Job, JobQueue

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float, interval: float = 0.05) -> T:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last value {value!r})")
        time.sleep(interval)


def http_status(url: str, timeout: float = 1.0) -> int:
    """The status of a GET of ``url``; 0 when nothing answers (not up yet, or down)."""
    try:
        return httpx.get(url, timeout=timeout).status_code
    except httpx.HTTPError:
        return 0


def wait_for_state(queue: JobQueue, job_id: str, state: str, timeout: float) -> Job:
    """Wait until the job is in ``state`` (e.g. completed, failed) and return it."""

    def reached() -> Job | None:
        job = queue.get_job(job_id)
        return job if job is not None and job.state == state else None

    job = wait_until(reached, timeout)
    assert job is not None
    return job


def nothing_left(queue: JobQueue) -> bool:
    """True when no job of ``queue`` waits, is delayed or runs (one atomic snapshot)."""
    counts = queue.get_job_counts()
    return counts["waiting"] == counts["delayed"] == counts["active"] == 0

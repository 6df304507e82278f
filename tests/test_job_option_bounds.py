"""Every number a job is given has a bound, and every bad one is a JobOptionsError that
names the option and its limit, with nothing stored."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis

from csgoflip_jobs import JobOptionsError, JobQueue, keys
from csgoflip_jobs.engine.options import MAX_ATTEMPTS, MAX_DELAY_MS, MAX_PRIORITY, Backoff

TEN_YEARS = "from 0 to 315360000000"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda q: q.add("test-record", {}, delay=MAX_DELAY_MS + 1), f"delay .*{TEN_YEARS}"),
        (lambda q: q.add("test-record", {}, delay=10**18), f"delay .*{TEN_YEARS}"),
        (lambda q: q.add("test-record", {}, delay=10**400), "delay .*a huge number"),
        (lambda q: q.add("test-record", {}, delay=float("inf")), "delay must be a whole number"),
        (lambda q: q.add("test-record", {}, backoff=10**15), f"backoff .*{TEN_YEARS}"),
        (
            lambda q: q.add("test-record", {}, backoff={"type": "fixed", "delay": 10**13}),
            f"backoff delay .*{TEN_YEARS}",
        ),
        (lambda q: q.add("test-record", {}, priority=MAX_PRIORITY + 1), "priority .*2097152"),
        (lambda q: q.add("test-record", {}, priority=10**30), "priority .*from 0 to 2097152"),
        (lambda q: q.add("test-record", {}, attempts=MAX_ATTEMPTS + 1), "attempts .*1 to 1000"),
        (lambda q: q.add("test-record", {}, remove_on_fail=10**9), "remove_on_fail .*1000000"),
        (lambda q: q.add("test-record", {"x": float("nan")}), "Out of range float"),
        (lambda q: q.add("test-record", {"x": [1, {"y": float("inf")}]}), "Out of range float"),
        (lambda q: q.add("test-record", {}, job_id="a\x00b"), "printable characters"),
        (lambda q: q.add("test-record", {}, job_id="x" * 257), "1-256 printable"),
        (lambda q: q.add("celery.chord_unlock", {}), "one of Celery's own tasks"),
        (lambda q: q.add("process-withdrawal", {"withdrawal_id": 1}), "job of queue 'payment'"),
    ],
)
def test_out_of_bounds_options_are_refused(
    redis_client: redis.Redis, call: Callable[[JobQueue], Any], message: str
) -> None:
    queue = JobQueue("notification")
    with pytest.raises(JobOptionsError, match=message):
        call(queue)
    assert sum(queue.get_job_counts().values()) == 0


def test_the_bounds_themselves_are_accepted(redis_client: redis.Redis) -> None:
    queue = JobQueue("notification")
    job_id = queue.add(
        "test-record", {}, delay=MAX_DELAY_MS, priority=MAX_PRIORITY, attempts=MAX_ATTEMPTS
    )
    job = queue.get_job(job_id)
    assert job is not None and job.state == "delayed"
    assert job.opts["priority"] == MAX_PRIORITY and job.opts["attempts"] == MAX_ATTEMPTS
    assert [j.id for j in queue.get_delayed()] == [job_id]
    # A task without a route of its own is a job of any queue.
    assert JobQueue("payment").add("test-record", {}) != job_id


def test_changes_of_a_delayed_job_are_bounded_too(redis_client: redis.Redis) -> None:
    queue = JobQueue("notification")
    job_id = queue.add("test-record", {}, delay=60_000)
    due = queue.get_job(job_id).due  # type: ignore[union-attr]
    with pytest.raises(JobOptionsError, match=f"delay_ms .*{TEN_YEARS}"):
        queue.change_delay(job_id, 10**18)
    with pytest.raises(JobOptionsError, match=r"priority .*2097152"):
        queue.change_priority(job_id, 2**40)
    with pytest.raises(JobOptionsError, match="limit must be"):
        queue.clean(0, 10**12, "delayed")
    with pytest.raises(JobOptionsError, match="end must be"):
        queue.get_delayed(0, 10**30)
    assert queue.get_job(job_id).due == due  # type: ignore[union-attr]


def test_exponential_backoff_stops_growing_at_the_longest_delay() -> None:
    backoff = Backoff("exponential", 1000)
    assert [backoff.delay_for(n) for n in (1, 2, 3)] == [1000, 2000, 4000]
    assert backoff.delay_for(MAX_ATTEMPTS) == MAX_DELAY_MS


def test_a_record_written_before_the_bounds_still_lists(redis_client: redis.Redis) -> None:
    """A due time stored as 1.0e+18 (or inf) by an unbounded delay broke every listing
    of its queue; such a record now shows, its due time unknown."""
    queue = JobQueue("notification")
    ids = [queue.add("test-record", {"n": n}, delay=60_000) for n in range(2)]
    redis_client.hset(keys.job_key("notification", ids[0]), "due", "1e+18")
    redis_client.hset(keys.job_key("notification", ids[1]), "due", "inf")
    assert {j.id: j.due for j in queue.get_delayed()} == {ids[0]: 10**18, ids[1]: None}


def test_progress_must_be_json(redis_client: redis.Redis) -> None:
    from tests.support.jobs import progress

    with pytest.raises(ValueError, match="NaN or Infinity"):
        progress.update_progress(float("nan"))

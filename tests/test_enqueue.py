"""Enqueueing: job_id dedupe, add_bulk in one round trip, clear errors for bad input."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import redis

from csgoflip_jobs import JobOptionsError, JobQueue, keys
from tests.support.polling import wait_for_state
from tests.support.workers import WorkerProcess

LARGE_BULK = 512
"""Jobs in the tests' large bulks, times a small factor."""


def test_the_same_job_id_enqueues_once(
    workers: Callable[..., WorkerProcess],
    runs: Callable[[], list[dict[str, Any]]],
) -> None:
    queue = JobQueue("payment")
    first = queue.add("test-record", {"withdrawal_id": 1}, job_id="withdrawal:1")
    second = queue.add("test-record", {"withdrawal_id": 2}, job_id="withdrawal:1")
    assert first == second == "withdrawal:1"
    assert queue.get_job_counts()["waiting"] == 1
    bulk = queue.add_bulk(
        [{"name": "test-record", "data": {"withdrawal_id": 3}, "opts": {"job_id": "withdrawal:1"}}]
    )
    assert bulk == ["withdrawal:1"]
    workers()
    wait_for_state(queue, "withdrawal:1", "completed", 10)
    assert [run["data"] for run in runs()] == [{"withdrawal_id": 1}]
    assert queue.get_job("withdrawal:1").data == {"withdrawal_id": 1}  # type: ignore[union-attr]


def test_add_bulk_sends_many_jobs_in_one_round_trip(
    redis_client: redis.Redis,
    round_trips: list[int],
) -> None:
    queue = JobQueue("email")
    queue.add("test-record", {"warm": "up"})  # first publish declares the queue
    before = round_trips[0]
    ids = queue.add_bulk([{"name": "test-record", "data": {"n": n}} for n in range(100)])
    assert round_trips[0] - before == 1
    assert len(set(ids)) == 100
    assert queue.get_job_counts()["waiting"] == 101


def test_single_add_is_one_round_trip(redis_client: redis.Redis, round_trips: list[int]) -> None:
    queue = JobQueue("email")
    queue.add("test-record", {"warm": "up"})
    before = round_trips[0]
    queue.add("test-record", {"n": 1}, delay=100, priority=2)
    assert round_trips[0] - before == 1


def test_enqueue_works_after_redis_lost_its_scripts(redis_client: redis.Redis) -> None:
    queue = JobQueue("email")
    queue.add("test-record", {"n": 0})
    redis_client.script_flush()  # what a Redis restart does
    queue.add_bulk([{"name": "test-record", "data": {"n": n}} for n in (1, 2)])
    assert queue.get_job_counts()["waiting"] == 3


def test_a_large_bulk_after_a_script_flush_stores_each_job_once(redis_client: redis.Redis) -> None:
    """After a script flush the NOSCRIPT calls of a large bulk are re-run, and nothing
    is stored twice."""
    queue = JobQueue("email")
    queue.add("test-record", {"n": -1})
    redis_client.script_flush()
    count = 3 * LARGE_BULK + 7
    jobs = [{"name": "test-record", "data": {"n": n}} for n in range(count)]
    jobs[5]["opts"] = {"job_id": "twice"}
    jobs[count - 1]["opts"] = {"job_id": "twice"}  # refused: the id is taken
    ids = queue.add_bulk(jobs)
    assert len(set(ids)) == count - 1
    assert queue.get_job_counts()["waiting"] == count  # the -1 job and count - 1 new ones
    assert queue.get_job("twice").data == {"n": 5}  # type: ignore[union-attr]
    assert redis_client.llen("email") == count


def test_a_large_bulk_survives_health_checks_falling_due(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """A health check PINGs and reads the next reply; one falling due while replies
    are pending would read a job's reply instead."""
    client = redis.Redis.from_url(redis_url, health_check_interval=1e-6)  # always due
    queue = JobQueue("email", client=client)
    ids = queue.add_bulk([{"name": "test-record", "data": {"n": n}} for n in range(2 * LARGE_BULK)])
    assert len(set(ids)) == 2 * LARGE_BULK
    assert queue.get_job_counts()["waiting"] == 2 * LARGE_BULK


def test_job_records_show_data_options_and_state(redis_client: redis.Redis) -> None:
    queue = JobQueue("payment")
    job_id = queue.add(
        "test-record",
        {"withdrawal_id": 5},
        delay=60_000,
        priority=1,
        attempts=5,
        backoff=250,
        remove_on_fail=7,
    )
    job = queue.get_job(job_id)
    assert job is not None
    assert (job.name, job.queue, job.state, job.data) == (
        "test-record",
        "payment",
        "delayed",
        {"withdrawal_id": 5},
    )
    assert job.opts == {
        "attempts": 5,
        "backoff": {"type": "fixed", "delay": 250},
        "delay": 60_000,
        "priority": 1,
        "remove_on_fail": 7,
    }
    assert job.timestamp and job.processed_on is None and job.attempts_made == 0
    assert queue.get_job("no-such-job") is None


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda q: q.add("test-record", {"n": 1}, delay=-1), "delay must be"),
        (lambda q: q.add("test-record", {"n": 1}, delay=1.5), "delay must be"),
        (lambda q: q.add("test-record", {"n": 1}, priority=-3), "priority must be"),
        (lambda q: q.add("test-record", {"n": 1}, attempts=0), "attempts must be"),
        (lambda q: q.add("test-record", {"n": 1}, backoff={"type": "linear"}), "backoff type"),
        (lambda q: q.add("test-record", {"n": 1}, remove_on_complete=-1), "remove_on_complete"),
        (lambda q: q.add("test-record", {"n": 1}, job_id=""), "job_id must be"),
        (lambda q: q.add("test-record", ["not", "a", "dict"]), "JSON object"),
        (lambda q: q.add("test-record", {"when": object()}), "not JSON-serialisable"),
        (lambda q: q.add("no-such-task", {}), "no task is registered"),
        (lambda q: q.add("test-sleep", {"seconds": 1, "extra": 2}), "bad data for 'test-sleep'"),
        (lambda q: q.add("test-record", {"blob": "x" * 1_100_000}), "JOB_MAX_BYTES"),
        (lambda q: q.add_bulk([{"name": "test-record", "opts": {"delay": -5}}]), "job 0:"),
        (lambda q: q.add_bulk([{"name": "test-record", "opts": {"dealy": 5}}]), "unknown"),
    ],
)
def test_bad_input_raises_a_clear_error_and_enqueues_nothing(
    redis_client: redis.Redis,
    call: Callable[[JobQueue], Any],
    message: str,
) -> None:
    queue = JobQueue("notification")
    with pytest.raises(JobOptionsError, match=message):
        call(queue)
    assert queue.get_job_counts() == {
        "waiting": 0,
        "delayed": 0,
        "active": 0,
        "completed": 0,
        "failed": 0,
        "paused": 0,
    }


def test_a_bad_job_in_a_bulk_enqueues_none_of_them(redis_client: redis.Redis) -> None:
    queue = JobQueue("notification")
    with pytest.raises(JobOptionsError, match="job 2"):
        queue.add_bulk(
            [
                {"name": "test-record"},
                {"name": "test-record"},
                {"name": "test-record", "opts": {"attempts": 0}},
            ]
        )
    assert queue.get_job_counts()["waiting"] == 0


def test_unknown_queue_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown queue 'payments'"):
        JobQueue("payments")


def _without_identity(message: dict[str, Any]) -> dict[str, Any]:
    """A task message minus what differs for every message sent (ids, delivery tag)."""
    headers = {k: v for k, v in message["headers"].items() if k not in ("id", "root_id")}
    # The job id a job was given (its Celery task id is then <queue>:<job id>).
    job_header = {k: v for k, v in headers["bullmq"].items() if k != "job_id"}
    headers = {**headers, "bullmq": job_header}
    properties = {
        k: v
        for k, v in message["properties"].items()
        if k not in ("correlation_id", "delivery_tag")
    }
    return {**message, "headers": headers, "properties": properties}


def test_bulk_jobs_get_the_messages_and_records_celery_would_make(
    redis_client: redis.Redis,
) -> None:
    """add_bulk lets Celery build the first message of each task and priority and
    stamps the rest; a stamped message must equal one Celery builds for the same job."""
    queue = JobQueue("email")
    data = {"to": "ü@example.com", "n": [1, {"deep": None}], "quote": 'say "hi"'}
    options = {"priority": 3, "attempts": 5, "backoff": 250, "remove_on_complete": 10}
    single_id = queue.add("test-record", data, **options)  # type: ignore[arg-type]
    bulk_ids = queue.add_bulk(
        [
            {"name": "test-record", "data": {"first": True}, "opts": options},
            {"name": "test-record", "data": data, "opts": {**options, "job_id": "stamped-1"}},
        ]
    )
    assert bulk_ids[1] == "stamped-1"
    messages = {}
    for raw in redis_client.lrange(keys.priority_list_key("email", 3), 0, -1):
        message = json.loads(raw)
        messages[message["headers"]["id"]] = message
    single, stamped = messages[single_id], messages["email:stamped-1"]
    assert stamped["headers"]["root_id"] == stamped["properties"]["correlation_id"]
    assert stamped["headers"]["root_id"] == "email:stamped-1"
    assert stamped["headers"]["bullmq"]["job_id"] == "stamped-1"
    assert stamped["properties"]["delivery_tag"] != single["properties"]["delivery_tag"]
    assert _without_identity(stamped) == _without_identity(single)
    # The records differ only in what is per job too.
    records = [
        redis_client.hgetall(keys.job_key("email", job_id)) for job_id in (single_id, "stamped-1")
    ]
    assert records[1].pop(b"task_id") == b"email:stamped-1" and b"task_id" not in records[0]
    for record in records:
        record.pop(b"timestamp")
        tag = record.pop(b"tag")
        assert tag == json.loads(record[b"msg"])["properties"]["delivery_tag"].encode()
        record[b"msg"] = _without_identity(json.loads(record[b"msg"]))  # type: ignore[assignment]
    assert records[0] == records[1]
    assert json.loads(records[1][b"data"]) == data


def test_bulk_jobs_of_several_tasks_and_priorities_all_run(
    workers: Callable[..., WorkerProcess],
    runs: Callable[[], list[dict[str, Any]]],
) -> None:
    queue = JobQueue("notification")
    jobs = [
        {"name": name, "data": {"n": n}, "opts": {"priority": n % 3}}
        for n in range(30)
        for name in ("test-record", "test-flaky")
    ]
    for job in jobs:
        if job["name"] == "test-flaky":
            job["data"]["succeed_on"] = 1  # type: ignore[index]
    ids = queue.add_bulk(jobs)
    workers(queues="notification")
    for job_id in ids:
        wait_for_state(queue, job_id, "completed", 30)
    assert sorted((r["name"], r["data"]["n"]) for r in runs()) == sorted(
        (job["name"], job["data"]["n"])  # type: ignore[index]
        for job in jobs
    )

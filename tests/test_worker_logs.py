"""Worker log lines say which job they are about (id, queue, and trace id with tracing
on), as text or, with LOG_FORMAT=json, as one JSON object per line."""

from __future__ import annotations

import json
from collections.abc import Callable

import redis

from csgoflip_jobs import JobQueue
from tests.support.otlp_receiver import otlp_receiver
from tests.support.polling import wait_for_state
from tests.support.workers import WorkerProcess


def test_a_jobs_log_lines_name_the_job_and_its_queue(
    redis_client: redis.Redis, workers: Callable[..., WorkerProcess]
) -> None:
    worker = workers(queues="email", pool="solo", concurrency=1)
    queue = JobQueue("email")
    job_id = queue.add("test-flaky", {"succeed_on": 2}, backoff=100)
    wait_for_state(queue, job_id, "completed", 20)
    lines = [line for line in worker.log().splitlines() if "try 1/3 failed" in line]
    assert len(lines) == 1 and f"] job={job_id} queue=email job {job_id} try 1/3" in lines[0]
    assert "job=" not in next(line for line in worker.log().splitlines() if "ready." in line)


def test_json_lines_carry_the_job_and_its_trace(
    redis_client: redis.Redis, workers: Callable[..., WorkerProcess]
) -> None:
    with otlp_receiver() as receiver:
        env = {"LOG_FORMAT": "json", "OTEL_TRACES_EXPORTER": "otlp",
               "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.endpoint}  # fmt: skip
        worker = workers(queues="email", pool="solo", concurrency=1, env=env)
        queue = JobQueue("email")
        job_id = queue.add("test-flaky", {"succeed_on": 2}, backoff=100)
        wait_for_state(queue, job_id, "completed", 20)
        records = []
        for line in worker.log().splitlines():
            if line.startswith("{"):
                records.append(json.loads(line))
    failed = [r for r in records if "try 1/3 failed" in r["message"]]
    assert len(failed) == 1
    (record,) = failed
    assert (record["job_id"], record["job_queue"], record["levelname"]) == (job_id, "email", "INFO")
    assert len(record["trace_id"]) == 32 and int(record["trace_id"], 16)
    assert any(r["message"].endswith("ready.") and r["job_id"] is None for r in records)

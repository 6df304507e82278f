"""Job ids belong to their queue (as in BullMQ), and any id the API accepts works in
every script: quotes, backslashes, slashes, non-ASCII letters, colons and braces."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis

from csgoflip_jobs import JobQueue, app, keys
from tests.support.polling import wait_for_state
from tests.support.workers import WorkerProcess

ODD_IDS = ['say"hi"', "back\\slash", "a/b/c", "ünïcødé:ß", "{braces}[1]", "'", '"', "\\"]


def test_the_same_id_on_two_queues_is_two_jobs(
    redis_client: redis.Redis,
    workers: Callable[..., WorkerProcess],
    runs: Callable[[], list[dict[str, Any]]],
) -> None:
    payment, notification = JobQueue("payment"), JobQueue("notification")
    assert notification.add("test-record", {"on": "notification"}, job_id="withdrawal:42")
    # It used to be refused silently here: the id was taken on another queue.
    assert payment.add("test-record", {"on": "payment"}, job_id="withdrawal:42")
    assert payment.get_job("withdrawal:42").data == {"on": "payment"}  # type: ignore[union-attr]
    assert payment.get_job_counts()["waiting"] == notification.get_job_counts()["waiting"] == 1
    assert [j.data for j in notification.get_waiting()] == [{"on": "notification"}]
    workers(queues="payment,notification")
    done = {
        q.name: wait_for_state(q, "withdrawal:42", "completed", 20) for q in (payment, notification)
    }
    assert {name: job.returnvalue for name, job in done.items()} == {
        "payment": {"on": "payment"},
        "notification": {"on": "notification"},
    }
    # Celery's ids are unique across queues: each job is its own Celery task.
    assert {job.task_id for job in done.values()} == {
        "payment:withdrawal:42",
        "notification:withdrawal:42",
    }
    assert app.AsyncResult("payment:withdrawal:42").get(timeout=5) == {"on": "payment"}
    assert sorted(r["data"]["on"] for r in runs()) == ["notification", "payment"]
    # A read or a change acts on its own queue's job only.
    assert payment.remove("withdrawal:42")
    assert payment.get_job("withdrawal:42") is None
    assert notification.get_job("withdrawal:42").state == "completed"  # type: ignore[union-attr]
    assert [j.id for j in notification.get_completed()] == ["withdrawal:42"]
    assert payment.get_completed() == []


@pytest.mark.parametrize("job_id", ODD_IDS)
def test_every_script_handles_an_odd_id(redis_client: redis.Redis, job_id: str) -> None:
    queue = JobQueue("email")
    assert queue.add("test-record", {"n": 1}, job_id=job_id) == job_id
    assert queue.add("test-record", {"n": 2}, job_id=job_id) == job_id  # once only
    assert [j.id for j in queue.get_waiting()] == [job_id]
    assert queue.get_job_counts()["waiting"] == 1
    assert queue.change_priority(job_id, 3)
    assert [j.id for j in queue.get_waiting()] == [job_id]
    assert queue.remove(job_id) and queue.get_job(job_id) is None
    assert redis_client.llen(keys.priority_list_key("email", 3)) == 0
    # The id is free again once removed; drain and obliterate take it whole too.
    assert queue.add("test-record", {"n": 3}, job_id=job_id, delay=60_000) == job_id
    assert queue.promote(job_id) and queue.drain() == 1
    assert queue.get_job(job_id) is None and sum(queue.get_job_counts().values()) == 0
    assert queue.add("test-record", {"n": 4}, job_id=job_id) == job_id
    assert queue.get_job(job_id).data == {"n": 4}  # type: ignore[union-attr]
    assert queue.obliterate() == 1 and queue.get_job(job_id) is None
    assert list(redis_client.scan_iter(match="csgoflip:queue:email:job*")) == []


def test_odd_ids_run_on_a_worker(
    redis_client: redis.Redis, workers: Callable[..., WorkerProcess]
) -> None:
    queue = JobQueue("email")
    queue.add_bulk([{"name": "test-progress", "opts": {"job_id": i}} for i in ODD_IDS])
    workers(queues="email", pool="solo", concurrency=1)
    for job_id in ODD_IDS:
        job = wait_for_state(queue, job_id, "completed", 20)
        assert job.progress == 100 and job.task_id == f"email:{job_id}"
        assert queue.get_job_logs(job_id) == ["step 1 of 2", "step 2 of 2"]
    assert sorted(j.id for j in queue.get_completed()) == sorted(ODD_IDS)
    assert queue.clean(0, 100) and queue.get_completed() == []
    assert list(redis_client.scan_iter(match="celery-task-meta-*")) == []

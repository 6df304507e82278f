"""Celery's publish signals fire once per job, with that job's own id and headers, on
every way of adding (add, add_bulk, the asyncio API): what a receiver adds to the
headers reaches the task, as with ``apply_async``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from celery import signals

from csgoflip_jobs import JobQueue, aio
from tests.support.polling import wait_for_state
from tests.support.workers import WorkerProcess

Seen = list[tuple[str, str, Any, str, str]]


@pytest.fixture
def seen() -> Iterator[Seen]:
    """Every publish signal: (which, the task id, the body's kwargs, exchange, routing
    key); the before-receiver adds a ``tenant`` header, as a multi-tenant app would."""
    record: Seen = []

    def before(sender: str, body: Any, exchange: str, routing_key: str, headers: dict[str, Any],
               **_: Any) -> None:  # fmt: skip
        headers["tenant"] = "acme"
        record.append(("before", headers["id"], body[1], exchange, routing_key))

    def after(sender: str, body: Any, exchange: str, routing_key: str, headers: dict[str, Any],
              **_: Any) -> None:  # fmt: skip
        record.append(("after", headers["id"], body[1], exchange, routing_key))

    signals.before_task_publish.connect(before, weak=False)
    signals.after_task_publish.connect(after, weak=False)
    try:
        yield record
    finally:
        signals.before_task_publish.disconnect(before)
        signals.after_task_publish.disconnect(after)


def test_each_add_fires_one_pair_with_its_own_id(
    seen: Seen,
    redis_client: redis.Redis,
    workers: Callable[..., WorkerProcess],
) -> None:
    """The template was published once (signals with an id that was no job's), and the
    jobs never: a header hook's header reached no task."""
    queue = JobQueue("notification")
    ids = [queue.add("test-headers", {"n": n}) for n in range(3)]
    expected = []
    for n, job_id in enumerate(ids):
        expected += [(w, job_id, {"n": n}, "", "notification") for w in ("before", "after")]
    assert seen == expected
    workers(queues="notification", pool="solo", concurrency=1)
    job = wait_for_state(queue, ids[0], "completed", 20)
    assert job.returnvalue == {"tenant": "acme", "job_id": ids[0], "task_id": ids[0],
                               "data": {"n": 0}}  # fmt: skip


def test_bulk_custom_ids_and_the_asyncio_api_fire_per_job_too(
    seen: Seen,
    redis_client: redis.Redis,
    workers: Callable[..., WorkerProcess],
) -> None:
    queue = JobQueue("email")
    bulk = queue.add_bulk([
        {"name": "test-headers", "data": {"n": 1}},
        {"name": "test-headers", "data": {"n": 2}, "opts": {"job_id": "own:2", "delay": 100}},
    ])  # fmt: skip

    async def add_async() -> str:
        try:
            return await aio.JobQueue("email").add("test-headers", {"n": 3}, priority=2)
        finally:
            await aio.close()

    third = asyncio.run(add_async())
    assert bulk[1] == "own:2"
    task_ids = [bulk[0], "email:own:2", third]  # a job given its own id: <queue>:<id>
    assert [(w, i) for w, i, *_ in seen] == [(w, i) for i in task_ids for w in ("before", "after")]
    workers(queues="email", pool="solo", concurrency=1)
    for job_id in (bulk[0], "own:2", third):
        job = wait_for_state(queue, job_id, "completed", 20)
        assert job.returnvalue["tenant"] == "acme" and job.returnvalue["job_id"] == job_id
    assert queue.get_job("own:2").returnvalue["task_id"] == "email:own:2"  # type: ignore[union-attr]


def test_a_job_id_added_twice_is_still_one_job(seen: Seen, redis_client: redis.Redis) -> None:
    queue = JobQueue("notification")
    assert queue.add("test-headers", {}, job_id="once") == "once"
    assert queue.add("test-headers", {}, job_id="once") == "once"
    assert queue.get_job_counts()["waiting"] == 1


def test_without_receivers_no_signal_fires_and_the_template_carries_no_header(
    redis_client: redis.Redis, workers: Callable[..., WorkerProcess]
) -> None:
    assert not signals.before_task_publish.receivers
    queue = JobQueue("notification")
    job_id = queue.add("test-headers", {"n": 9})
    workers(queues="notification", pool="solo", concurrency=1)
    assert wait_for_state(queue, job_id, "completed", 20).returnvalue["tenant"] is None

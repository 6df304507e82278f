"""A job's cost in Redis commands on a real worker, and what the merges keep.

Per job a busy worker sends DELIVER, START and FINISH; the ack rides on the next
DELIVER (FINISH already dropped the delivery's unacked entry) and the task events go
in batches. These tests count the commands with MONITOR and check that nothing is
lost on the way: every job completes once, no unacked entry is left behind, and an
event receiver (as Flower's) still gets every task event of every job.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import kombu
import pytest
import redis

from csgoflip_jobs import JobQueue, app, keys
from csgoflip_jobs.engine.celery_ext.qos import CarriedAcks
from csgoflip_jobs.engine.celery_ext.transport import Transport
from tests.support.hot_path import commands_for_jobs
from tests.support.polling import wait_for_state, wait_until
from tests.support.workers import WorkerProcess

pytestmark = pytest.mark.slow

JOBS = 200
WORKER_EVENTS = ("task-received", "task-started", "task-succeeded")


def test_a_busy_worker_sends_three_commands_per_job_and_leaves_nothing_unacked(
    workers: Callable[..., WorkerProcess],
    runs: Callable[[], list[dict[str, Any]]],
    redis_url: str,
    redis_client: redis.Redis,
) -> None:
    queue = JobQueue("notification")
    workers(queues="notification", concurrency=2)
    counted, _ids = commands_for_jobs(queue, runs, redis_url, JOBS)
    assert counted["START"] == JOBS and counted["FINISH"] == JOBS, counted
    # One DELIVER per job, plus a few that found the queue empty (idle, or carrying acks).
    assert JOBS <= counted["DELIVER"] <= JOBS + 10, counted
    assert counted["acks"] <= 5, counted  # kombu's ack was 4 commands a job
    assert counted["task events"] <= JOBS // 4, counted  # 3 events a job, batched
    assert redis_client.zcard(keys.KOMBU_UNACKED_INDEX_KEY) == 0


def test_an_event_receiver_gets_every_task_event_of_every_job(
    workers: Callable[..., WorkerProcess], redis_client: redis.Redis
) -> None:
    """What Flower reads: task-sent (sent by ENQUEUE) and the worker's received,
    started and succeeded, now sent in batches."""
    events: list[dict[str, Any]] = []
    receiver_ready = threading.Event()
    with app.connection_for_read() as connection:
        receiver = app.events.Receiver(connection, handlers={"*": events.append})

        def receive() -> None:
            receiver.should_stop = False
            receiver_ready.set()
            receiver.capture(limit=None, timeout=None, wakeup=False)

        reader = threading.Thread(target=receive, daemon=True)
        reader.start()
        assert receiver_ready.wait(5)
        time.sleep(0.5)  # subscribed
        queue = JobQueue("notification")
        ids = queue.add_bulk([{"name": "test-record", "data": {"n": n}} for n in range(50)])
        ids.append(queue.add("test-record", {"n": 50}))
        workers(queues="notification", concurrency=2)

        def seen() -> dict[str, set[str]]:
            by_job: dict[str, set[str]] = {}
            for event in list(events):
                if event.get("uuid") in ids:
                    by_job.setdefault(event["uuid"], set()).add(event["type"])
            return by_job

        wanted = {"task-sent", *WORKER_EVENTS}
        try:
            wait_until(lambda: all(seen().get(i) == wanted for i in ids), 30)
        finally:
            receiver.should_stop = True
            reader.join(5)
    assert all(seen()[i] == wanted for i in ids), seen()
    for job_id in ids:
        mine = [e for e in events if e.get("uuid") == job_id]
        assert len(mine) == 4 and [e["type"] for e in mine][1:] == list(WORKER_EVENTS)


def test_the_first_delivery_of_a_deferred_job_coming_back_is_skipped(
    workers: Callable[..., WorkerProcess],
    runs: Callable[[], list[dict[str, Any]]],
    redis_client: redis.Redis,
) -> None:
    """A deferred job's first delivery ends without an outcome: its ack rides on the
    next DELIVER. Should it come back anyway (its worker died with the ack carried),
    the job, now waiting in the delayed set as a new message of the same try, must
    not run twice: the delivery's tag is no longer the job's."""
    queue = JobQueue("notification")
    job_id = queue.add("test-defer-once", {"delay_ms": 3000})
    first = redis_client.lindex("notification", 0)
    assert first is not None
    worker = workers(queues="notification", concurrency=1)
    wait_until(lambda: queue.get_job(job_id).state == "delayed", 10)  # type: ignore[union-attr]
    redis_client.lpush("notification", first)
    redis_client.lpush(keys.ready_key("notification"), "1")
    wait_until(lambda: "was delivered again after it finished" in worker.log(), 10)
    assert runs() == [] and queue.get_job(job_id).state == "delayed"  # type: ignore[union-attr]
    wait_for_state(queue, job_id, "completed", 15)
    assert len(runs()) == 1
    wait_until(lambda: redis_client.hlen(keys.KOMBU_UNACKED_KEY) == 0, 5)


def test_a_job_added_again_sends_no_second_task_sent_event(redis_client: redis.Redis) -> None:
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.psubscribe("*celeryev/task.sent")
    try:
        queue = JobQueue("notification")
        queue.add("test-record", {"n": 1}, job_id="sent-once")
        assert queue.add("test-record", {"n": 1}, job_id="sent-once") == "sent-once"
        queue.add_bulk([{"name": "test-record", "data": {}, "opts": {"job_id": "sent-once"}}])
        received = []
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.1)
            if message is not None:
                received.append(json.loads(base64.b64decode(json.loads(message["data"])["body"])))
    finally:
        pubsub.close()
    # The event names the Celery task, whose id carries the queue (job ids are per queue).
    assert [event["uuid"] for event in received] == ["notification:sent-once"]
    assert received[0]["type"] == "task-sent" and received[0]["name"] == "test-record"


def test_finish_acks_the_delivery_whose_try_it_stores(redis_client: redis.Redis) -> None:
    """The outcome and the ack are one step: no crash between them can leave the
    delivery to be handed out again."""
    from celery.app.task import Context

    queue = JobQueue("notification")
    job_id = queue.add("test-record", {"n": 1})
    message = json.loads(redis_client.hget(keys.job_key("notification", job_id), "msg") or b"{}")
    tag = message["properties"]["delivery_tag"]
    redis_client.hset(keys.KOMBU_UNACKED_KEY, tag, json.dumps([message, "", "notification"]))
    redis_client.zadd(keys.KOMBU_UNACKED_INDEX_KEY, {tag: time.time()})
    request = Context(
        id=job_id,
        delivery_info={"routing_key": "notification"},
        properties={"delivery_tag": tag},
    )
    app.backend.store_result(job_id, {"n": 1}, "SUCCESS", request=request)
    assert queue.get_job(job_id).state == "completed"  # type: ignore[union-attr]
    assert not redis_client.hexists(keys.KOMBU_UNACKED_KEY, tag)
    assert redis_client.zscore(keys.KOMBU_UNACKED_INDEX_KEY, tag) is None


def test_acks_carried_too_long_or_at_close_are_dropped(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """The job keeper's safety net (drop_carried_acks after a second) and closing."""
    with kombu.Connection(redis_url, transport=Transport) as connection:
        channel = connection.channel()
        for tag in ("old", "closing"):
            redis_client.hset(keys.KOMBU_UNACKED_KEY, tag, "[]")
            redis_client.zadd(keys.KOMBU_UNACKED_INDEX_KEY, {tag: time.time()})
        channel.carried_acks.add("old")
        channel.drop_carried_acks(older_than_s=0.5)
        assert redis_client.hexists(keys.KOMBU_UNACKED_KEY, "old")  # still young
        time.sleep(0.6)
        channel.carried_acks.add("closing")
        channel.drop_carried_acks(older_than_s=0.5)
        assert not redis_client.hexists(keys.KOMBU_UNACKED_KEY, "old")
        assert redis_client.hexists(keys.KOMBU_UNACKED_KEY, "closing")
        channel.close()
    assert redis_client.hlen(keys.KOMBU_UNACKED_KEY) == 0
    assert redis_client.zcard(keys.KOMBU_UNACKED_INDEX_KEY) == 0


def test_carried_acks_given_back_come_first_and_age_from_then() -> None:
    carried = CarriedAcks()
    carried.add("b")
    assert carried.take() == ["b"] and not carried
    carried.add("c")
    carried.give_back(["a"])
    assert carried.take(older_than_s=60) == []
    assert carried.take() == ["a", "c"]

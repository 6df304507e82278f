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
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import kombu
import pytest
import redis

from csgoflip_jobs import JobQueue, app, keys
from csgoflip_jobs.engine import scripts
from csgoflip_jobs.engine.celery_ext.qos import CarriedAcks
from csgoflip_jobs.engine.celery_ext.transport import Transport
from tests.support.polling import wait_until
from tests.support.workers import WorkerProcess

pytestmark = pytest.mark.slow

JOBS = 200
WORKER_EVENTS = ("task-received", "task-started", "task-succeeded")


@contextmanager
def monitored(redis_url: str) -> Iterator[list[str]]:
    """The commands clients send the test database while the block runs (scripts'
    own calls left out)."""
    watcher = redis.Redis.from_url(redis_url)
    db = int(watcher.connection_pool.connection_kwargs.get("db", 0))
    seen: list[str] = []
    ready = threading.Event()

    def watch() -> None:
        with watcher.monitor() as monitor:
            ready.set()
            while (command := monitor.next_command())["command"] != "PING monitor-stop":
                if command.get("client_type") != "lua" and int(command.get("db", -1)) == db:
                    seen.append(str(command["command"]))

    reader = threading.Thread(target=watch, daemon=True)
    reader.start()
    assert ready.wait(10)
    try:
        yield seen
    finally:
        redis.Redis.from_url(redis_url).execute_command("PING", "monitor-stop")
        reader.join(30)


def kinds(commands: list[str]) -> Counter[str]:
    """The commands by what they do for a job."""
    names = {scripts.DELIVER.sha: "DELIVER", scripts.START.sha: "START",
             scripts.FINISH.sha: "FINISH"}  # fmt: skip
    counted: Counter[str] = Counter()
    for command in commands:
        words = command.split()
        if words[0] == "EVALSHA" and words[1] in names:
            counted[names[words[1]]] += 1
        elif words[0] == "PUBLISH" and "celeryev/task" in words[1]:
            counted["task events"] += 1
        elif words[0] == "MULTI" or (words[0] in ("ZREM", "HDEL") and "unacked" in words[1]):
            counted["acks"] += 1
    return counted


def test_a_busy_worker_sends_three_commands_per_job_and_leaves_nothing_unacked(
    workers: Callable[..., WorkerProcess],
    runs: Callable[[], list[dict[str, Any]]],
    redis_url: str,
    redis_client: redis.Redis,
) -> None:
    queue = JobQueue("notification")
    workers(queues="notification", concurrency=2)
    queue.add("test-record", {"n": -1})  # the worker is up and its scripts loaded
    wait_until(lambda: len(runs()) == 1 and queue.get_job_counts()["completed"] == 1, 20)
    with monitored(redis_url) as commands:
        queue.add_bulk([{"name": "test-record", "data": {"n": n}} for n in range(JOBS)])
        wait_until(lambda: queue.get_job_counts()["active"] == 0 and len(runs()) == JOBS + 1, 60)
        wait_until(lambda: redis_client.hlen(keys.KOMBU_UNACKED_KEY) == 0, 5)
    counted = kinds(commands)
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
    assert [event["uuid"] for event in received] == ["sent-once"]
    assert received[0]["type"] == "task-sent" and received[0]["name"] == "test-record"


def test_finish_acks_the_delivery_whose_try_it_stores(redis_client: redis.Redis) -> None:
    """The outcome and the ack are one step: no crash between them can leave the
    delivery to be handed out again."""
    from celery.app.task import Context

    queue = JobQueue("notification")
    job_id = queue.add("test-record", {"n": 1})
    message = json.loads(redis_client.hget(keys.job_key(job_id), "msg") or b"{}")
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

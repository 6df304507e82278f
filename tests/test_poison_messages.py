"""Poison messages: each is rejected and logged once, the worker lives, the next job runs."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from csgoflip_jobs import JobQueue, app
from csgoflip_jobs.keys import DEAD_LETTERS_KEY, job_key
from tests.support.polling import wait_for_state, wait_until
from tests.support.workers import WorkerProcess

pytestmark = pytest.mark.fault

UNTRUSTED_SERIALIZER = "pickle"
"""What an attacker would send; workers accept JSON only and must refuse it."""


class CreatesAFile:
    """Unpickling this would run a shell command: it must never be unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.path}",))


def test_poison_messages_are_rejected_once_and_the_worker_carries_on(
    tmp_path: Path, workers: Callable[..., WorkerProcess], redis_client: redis.Redis
) -> None:
    worker = workers(queues="notification", concurrency=1)
    proof = tmp_path / "pickle-was-executed"
    redis_client.lpush("notification", b"\x00\xffnot json at all")
    redis_client.lpush("notification", json.dumps({"no": "properties"}))
    app.send_task(
        "test-record",
        kwargs={"evil": CreatesAFile(proof)},
        queue="notification",
        serializer=UNTRUSTED_SERIALIZER,
    )
    app.send_task("no-such-task", kwargs={}, queue="notification")
    wrong_shape = app.send_task("send-notification", kwargs={"nope": 1}, queue="notification").id
    good = JobQueue("notification").add("test-record", {"after": "poison"})

    wait_for_state(JobQueue("notification"), good, "completed", 20)
    failed = wait_for_state(JobQueue("notification"), wrong_shape, "failed", 10)
    assert failed.attempts_made == 1 and "bad job data" in (failed.failed_reason or "")
    assert worker.process.poll() is None  # still running
    assert not proof.exists()
    dead = [json.loads(item) for item in redis_client.lrange(DEAD_LETTERS_KEY, 0, -1)]
    assert len(dead) == 2
    assert {d["reason"] for d in dead} == {"not JSON", "not a kombu message"}
    assert {d["raw"] for d in dead} == {"\x00\\xffnot json at all", '{"no": "properties"}'}
    expected = {
        "dropped an unreadable message": 2,
        "Received invalid task message: Refusing to deserialize untrusted content of type "
        "pickle": 1,
        "Received unregistered task of type 'no-such-task'": 1,
    }
    wait_until(lambda: all(line in worker.log() for line in expected), 10)
    log = worker.log()
    assert {line: log.count(line) for line in expected} == expected


def test_a_message_kombu_cannot_build_is_set_aside_whole(
    workers: Callable[..., WorkerProcess], redis_client: redis.Redis
) -> None:
    """A message with kombu's envelope whose body cannot be decoded is dead-lettered in
    the same entry format as garbage, and its unacked entry goes with it (one script)."""
    queue = JobQueue("notification")
    delayed = queue.add("test-record", {"n": 1}, delay=60_000)  # a message to copy and break
    message = json.loads(redis_client.hget(job_key("notification", delayed), "msg"))  # type: ignore[arg-type]
    message["properties"]["body_encoding"] = "base64"
    message["body"] = "not-base64!!"
    redis_client.lpush("notification", json.dumps(message))
    worker = workers(queues="notification", concurrency=1)
    good = queue.add("test-record", {"after": "broken body"})
    wait_for_state(queue, good, "completed", 20)
    dead = [json.loads(item) for item in redis_client.lrange(DEAD_LETTERS_KEY, 0, -1)]
    assert len(dead) == 1 and dead[0]["reason"].startswith("not a kombu message (")
    assert json.loads(dead[0]["raw"])["body"] == "not-base64!!"
    tag = message["properties"]["delivery_tag"]
    assert redis_client.hget("unacked", tag) is None
    assert redis_client.zscore("unacked_index", tag) is None
    assert worker.process.poll() is None

"""Poison messages: each is rejected and logged once, the worker lives, the next job runs."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from csgoflip_jobs import JobQueue, app
from csgoflip_jobs.keys import DEAD_LETTERS_KEY
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

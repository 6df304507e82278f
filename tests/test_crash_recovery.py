"""Payment-grade delivery: late acks, redelivery after kill -9, no duplicates of long jobs."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from csgoflip_jobs import JobQueue, keys
from tests.support.jobs import RUNS_KEY
from tests.support.polling import wait_for_state, wait_until
from tests.support.redis_servers import start_redis
from tests.support.workers import WorkerProcess, enqueue_elsewhere, start_worker

pytestmark = [pytest.mark.slow, pytest.mark.fault]


def test_a_job_whose_worker_is_killed_mid_run_runs_again_within_60s(
    workers: Callable[..., WorkerProcess],
    runs: Callable[[], list[dict[str, Any]]],
) -> None:
    """Default settings: visibility timeout 30 s, heartbeat 5 s, restore sweep 5 s."""
    first = workers(name="doomed")
    queue = JobQueue("payment")
    job_id = queue.add("test-sleep", {"seconds": 3})
    wait_until(lambda: any(r.get("phase") == "start" for r in runs()), 10)
    first.kill()
    killed_at = time.time()
    workers(name="rescuer")
    job = wait_for_state(queue, job_id, "completed", 60)
    starts = [r for r in runs() if r.get("phase") == "start"]
    ends = [r for r in runs() if r.get("phase") == "end"]
    assert len(starts) == 2 and len(ends) == 1
    assert starts[1]["at"] - killed_at < 60
    assert job.attempts_made == 1  # a crash is not a failed try
    assert queue.get_job_counts()["active"] == 0


def test_a_job_longer_than_the_visibility_timeout_is_not_run_twice(
    workers: Callable[..., WorkerProcess],
    runs: Callable[[], list[dict[str, Any]]],
) -> None:
    """With a 6 s visibility timeout, a 14 s job and a second idle worker: one run only."""
    env = {"VISIBILITY_TIMEOUT_S": "6"}
    workers(name="busy", env=env, concurrency=1)
    queue = JobQueue("payment")
    job_id = queue.add("test-sleep", {"seconds": 14})
    wait_until(lambda: runs(), 10)
    workers(name="idle", env=env, concurrency=1)
    wait_for_state(queue, job_id, "completed", 30)
    assert len([r for r in runs() if r.get("phase") == "start"]) == 1


def test_sigterm_lets_the_running_job_finish(
    workers: Callable[..., WorkerProcess],
    runs: Callable[[], list[dict[str, Any]]],
) -> None:
    worker = workers(concurrency=1)
    queue = JobQueue("notification")
    job_id = queue.add("test-sleep", {"seconds": 2})
    wait_until(lambda: runs(), 10)
    worker.stop(timeout=20)
    assert worker.process.returncode == 0
    assert queue.get_job(job_id).state == "completed"  # type: ignore[union-attr]


def test_a_redelivered_message_of_a_finished_and_trimmed_job_does_not_run_again(
    workers: Callable[..., WorkerProcess],
    runs: Callable[[], list[dict[str, Any]]],
    redis_client: redis.Redis,
) -> None:
    """A message can come back after its job finished (e.g. its ack was lost in a Redis
    restart and the visibility sweep put it back). By then retention may have
    deleted the job's record; the missing record must not read as "never ran"."""
    queue = JobQueue("notification")
    job_id = queue.add("test-record", {"n": 1}, remove_on_complete=True)
    message = redis_client.lindex("notification", 0)
    assert message is not None
    worker = workers(queues="notification", concurrency=1)
    wait_until(lambda: len(runs()) == 1 and queue.get_job(job_id) is None, 10)

    redis_client.lpush("notification", message)  # the same delivery, back on its queue
    redis_client.lpush(keys.ready_key("notification"), "1")
    skipped = f"job {job_id} try 1 was delivered again after it finished"
    wait_until(lambda: skipped in worker.log(), 10)
    assert len(runs()) == 1
    assert redis_client.llen("notification") == 0
    assert redis_client.hlen(keys.KOMBU_UNACKED_KEY) == 0


def test_a_job_running_when_the_broker_connection_drops_runs_once_and_is_acked(
    workers: Callable[..., WorkerProcess],
    runs: Callable[[], list[dict[str, Any]]],
    redis_client: redis.Redis,
) -> None:
    """Celery keeps a running job going when its broker connection drops and kombu
    puts the messages the channel held back on the queue: an idle worker must not
    pick up the running one, and its ack must land on the new connection."""
    # Two processes: while one runs the job, the consumer waits for more on its
    # connection, so it sees the drop at once (Celery then closes the channel).
    first = workers(name="first", queues="payment", concurrency=2)
    queue = JobQueue("payment")
    job_id = queue.add("test-sleep", {"seconds": 4})
    wait_until(lambda: runs(), 10)
    workers(name="idle", queues="payment", concurrency=1)
    # Drop every plain client connection (the workers' consumers among them).
    redis_client.client_kill_filter(_type="normal", skipme=True)
    wait_for_state(queue, job_id, "completed", 20)
    wait_until(lambda: redis_client.hlen(keys.KOMBU_UNACKED_KEY) == 0, 15)
    assert [r["phase"] for r in runs()] == ["start", "end"]
    assert "Connection to broker lost" in first.log()
    time.sleep(2)  # a second run would have started by now
    assert len(runs()) == 2


def test_a_job_whose_start_cannot_reach_redis_goes_back_and_runs_later(
    tmp_path: Path,
) -> None:
    """Redis fails after a job was delivered but before it could be marked started (here:
    no new connection is accepted, as while Redis restarts). The job never ran, so it
    must not be recorded failed: its delivery goes back and it runs once Redis is fine."""
    server = start_redis()
    env = {
        **os.environ,
        "REDIS_URL": server.url,
        "VISIBILITY_TIMEOUT_S": "5",
        "REDIS_MAX_RETRIES": "1",
        "REDIS_COMMAND_TIMEOUT_S": "2",
    }
    client = redis.Redis.from_url(server.url)
    worker = start_worker(tmp_path / "w.log", env=env, queues="email", concurrency=1)
    try:
        # Due in 3 s: the worker's scheduler moves it onto the queue on a connection it
        # already has, while the pool process, which has not run a job yet, must connect.
        enqueue_elsewhere(
            env, "JobQueue('email').add('test-record', {'n': 1}, delay=3000, job_id='start-fails')"
        )
        client.config_set("maxclients", 1)  # open connections stay; new ones are refused
        wait_until(lambda: "handed back" in worker.log(), 20)
        assert client.hget(keys.job_key("email", "start-fails"), "state") != b"failed"
        client.config_set("maxclients", 10000)
        wait_until(
            lambda: client.hget(keys.job_key("email", "start-fails"), "state") == b"completed", 30
        )
        time.sleep(1)  # a second run would show now
        assert client.llen(RUNS_KEY) == 1
    finally:
        client.config_set("maxclients", 10000)
        worker.kill()
        server.stop()


def test_a_short_command_timeout_does_not_break_the_workers_scheduler(tmp_path: Path) -> None:
    """The scheduler thread blocks on Redis between checks; with a command timeout as
    short as its longest wait, every wait used to end in a socket timeout."""
    server = start_redis()
    env = {**os.environ, "REDIS_URL": server.url, "REDIS_COMMAND_TIMEOUT_S": "1"}
    worker = start_worker(tmp_path / "w.log", env=env, queues="email", concurrency=1)
    try:
        enqueue_elsewhere(
            env, "JobQueue('email').add('test-record', {'n': 1}, delay=1500, job_id='delayed')"
        )
        client = redis.Redis.from_url(server.url)
        wait_until(
            lambda: client.hget(keys.job_key("email", "delayed"), "state") == b"completed", 15
        )
        time.sleep(3)  # idle: the scheduler waits on Redis over and over
        assert "job keeper:" not in worker.log()
    finally:
        worker.kill()
        server.stop()

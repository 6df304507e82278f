"""The csgoflip-jobs command: enqueue, counts, migrate, reconcile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

import redis
from sqlalchemy import text

from tests.support.payment_helpers import funded_user, payment_service
from tests.support.workers import WorkerProcess


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "csgoflip_jobs.ops.cli", *args],
        text=True,
        capture_output=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def test_enqueue_and_counts(redis_client: redis.Redis) -> None:
    added = cli(
        "enqueue",
        "notification",
        "send-notification",
        '{"user_id": 1, "type": "hi"}',
        "--delay",
        "60000",
    )
    assert added.returncode == 0, added.stderr
    counts = json.loads(cli("counts", "--json").stdout)
    assert counts["notification"]["delayed"] == 1
    bad = cli("enqueue", "notification", "send-notification", '{"user": 1}')
    assert bad.returncode != 0 and "bad data for 'send-notification'" in bad.stderr
    not_json = cli("enqueue", "notification", "send-notification", "{oops")
    assert not_json.returncode != 0 and "not JSON" in not_json.stderr


def test_migrate_and_reconcile(database_url: str, redis_client: redis.Redis) -> None:
    env = {"DATABASE_URL": database_url}
    assert cli("migrate", env=env).returncode == 0
    service = payment_service(database_url)
    funded_user(service, 700)
    clean = cli("reconcile", "--json", env=env)
    assert clean.returncode == 0, clean.stderr
    assert json.loads(clean.stdout)["ok"] is True
    with service.sessions() as session, session.begin():
        session.execute(text("UPDATE users SET balance_minor = balance_minor + 1"))
    broken = cli("reconcile", env=env)
    assert broken.returncode == 1
    assert "PROBLEM: user" in broken.stdout and "ledger sums to 700" in broken.stdout


def test_stats_jobs_and_retry_failed(
    redis_client: redis.Redis, workers: Callable[..., WorkerProcess]
) -> None:
    from csgoflip_jobs import JobQueue
    from tests.support.polling import wait_for_state

    queue = JobQueue("email")
    # A real task (the CLI process does not load the test tasks): a bad address fails it.
    bad_email = {"to": "not an address", "template": "welcome", "context": {}}
    failed = queue.add("send-email", bad_email, attempts=2, priority=3)
    workers(queues="email", concurrency=1)
    wait_for_state(queue, failed, "failed", 10)
    stats = json.loads(cli("stats", "--json").stdout)
    assert stats["queues"]["email"]["failed"] == 1 and stats["maxmemory_policy"] == "noeviction"
    listed = cli("jobs", "failed", "--queue", "email")
    assert f"{failed}  send-email  tries=1  UnrecoverableError: malformed" in listed.stdout
    retried = cli("retry-failed", "--queue", "email")
    assert retried.returncode == 0 and "re-enqueued 1 failed jobs of email" in retried.stdout
    job = wait_for_state(queue, failed, "failed", 10)  # it runs again and fails again
    assert job.opts["attempts"] == 2 and job.opts["priority"] == 3
    assert len(queue.get_failed()) == 1


def test_check_fails_on_an_unsafe_broker_and_names_what_is_wrong(
    redis_client: redis.Redis,
) -> None:
    result = cli("check")
    assert result.returncode == 1
    lines = {
        line.split()[1]: line.split()[0]
        for line in result.stdout.splitlines()[:-1]
        if len(line.split()) > 1
    }
    assert lines["eviction"] == "ok"  # the test Redis runs noeviction
    assert lines["persistence"] == "UNSAFE"  # it keeps nothing on disk
    assert lines["password"] == "UNSAFE" and lines["TLS"] == "UNSAFE"
    assert "not ready for production" in result.stdout


def test_check_passes_the_parts_a_hardened_broker_has(tmp_path: object) -> None:
    from tests.support.redis_servers import start_redis

    server = start_redis("--requirepass", "s3cret", "--appendonly", "yes")
    try:
        url = f"redis://:s3cret@127.0.0.1:{server.port}/0"
        result = cli("check", env={"REDIS_URL": url, "FLOWER_USER": "ops", "FLOWER_PASSWORD": "pw"})
        unsafe = [line for line in result.stdout.splitlines() if line.startswith("UNSAFE")]
        assert len(unsafe) == 1 and "TLS" in unsafe[0]  # the one thing left: rediss://
        assert result.returncode == 1
    finally:
        server.stop()


def test_job_commands_list_change_and_follow_a_queue(redis_client: redis.Redis) -> None:
    from csgoflip_jobs import JobQueue

    queue = JobQueue("email")
    waiting = queue.add("test-record", {"n": 1})
    delayed = queue.add("test-record", {"n": 2}, delay=60_000)
    listed = json.loads(cli("jobs", "waiting", "--queue", "email", "--json").stdout)
    assert [job["id"] for job in listed] == [waiting]
    assert delayed in cli("jobs", "delayed", "--queue", "email").stdout
    assert cli("promote", "--queue", "email", delayed).returncode == 0
    refused = cli("promote", "--queue", "email", delayed)  # not delayed any more
    assert refused.returncode == 1 and "not promoted (not delayed)" in refused.stdout
    assert "email paused" in cli("pause", "--queue", "email").stdout and queue.is_paused()
    assert "email resumed" in cli("resume", "--queue", "email").stdout
    assert cli("remove", "--queue", "email", waiting).returncode == 0
    assert queue.get_job(waiting) is None
    cleaned = cli("clean", "--queue", "email", "--state", "waiting", "--grace-ms", "0")
    assert "removed 1 waiting jobs of email" in cleaned.stdout
    events = cli("events", "--queue", "email").stdout.splitlines()
    assert [line.split()[1] for line in events if waiting in line] == [
        "added",
        "waiting",
        "removed",
    ]
    unknown = cli("jobs", "waiting", "--queue", "nope")
    assert unknown.returncode != 0 and "unknown queue 'nope'" in unknown.stderr


def test_events_follow_prints_events_as_they_come(redis_client: redis.Redis) -> None:
    from csgoflip_jobs import JobQueue

    follower = subprocess.Popen(
        [sys.executable, "-m", "csgoflip_jobs.ops.cli", "events", "--queue", "email", "--follow",
         "--from", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )  # fmt: skip
    try:
        # From the (flushed) stream's start, so a follower slow to start misses nothing;
        # the second job is added once the first was printed: it comes while following.
        queue = JobQueue("email")
        job_id = queue.add("test-record", {"n": 1})
        first = follower.stdout.readline() if follower.stdout else ""
        assert "added" in first and job_id in first
        later_id = queue.add("test-record", {"n": 2})
        # No worker runs: each job has two events, added and waiting.
        lines = [follower.stdout.readline() if follower.stdout else "" for _ in range(3)]
        assert "waiting" in lines[0] and job_id in lines[0], lines
        assert "added" in lines[1] and later_id in lines[1], lines
    finally:
        follower.terminate()
        follower.wait(10)

"""Every size a client or a task sets has a bound: progress, log volume per job, session
metadata, notification payloads (inbound WebSocket messages: test_gateway_security)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis

from csgoflip_jobs import JobQueue, SessionService, UnrecoverableError
from csgoflip_jobs.notifications.service import NotificationService
from tests.support.polling import wait_for_state
from tests.support.workers import WorkerProcess


def test_progress_over_its_cap_is_refused() -> None:
    from tests.support.jobs import progress

    with pytest.raises(ValueError, match=r"the limit is 65536 \(PROGRESS_MAX_BYTES\)"):
        progress.update_progress({"blob": "x" * 70_000})


def test_a_jobs_logs_keep_the_newest_lines_within_the_byte_cap(
    redis_client: redis.Redis, workers: Callable[..., WorkerProcess]
) -> None:
    """10 MB of logs per job (1000 lines of 10,000 characters) were kept before."""
    workers(queues="email", pool="solo", concurrency=1, env={"JOB_LOG_MAX_BYTES": "4096"})
    queue = JobQueue("email")
    job_id = queue.add("test-log-lines", {"lines": 50, "chars": 1000})
    job = wait_for_state(queue, job_id, "completed", 20)
    lines = queue.get_job_logs(job_id)
    assert job.returnvalue == len(lines) == 4  # 4 lines of 1000 bytes fit in 4096
    assert [line[:6] for line in lines] == ["000046", "000047", "000048", "000049"]


def test_session_metadata_over_its_cap_is_refused(redis_client: redis.Redis) -> None:
    sessions = SessionService(redis_client)
    with pytest.raises(ValueError, match=r"the limit is 4096 \(SESSION_METADATA_MAX_BYTES\)"):
        sessions.create(1, {"blob": "x" * 5_000})
    assert sessions.get_user_sessions(1) == set()
    assert sessions.create(1, {"name": "fits"}).metadata == {"name": "fits"}


def test_a_notification_over_its_cap_fails_its_job_at_once(
    redis_client: redis.Redis, workers: Callable[..., WorkerProcess]
) -> None:
    with pytest.raises(UnrecoverableError, match="at most 16384 bytes"):
        NotificationService(redis_client).send(1, "big", {"blob": "x" * 20_000})
    workers(queues="notification", pool="solo", concurrency=1)
    queue = JobQueue("notification")
    job_id = queue.add(
        "send-notification", {"user_id": 1, "type": "big", "payload": {"blob": "x" * 20_000}}
    )
    job = wait_for_state(queue, job_id, "failed", 20)
    assert job.attempts_made == 1 and "NOTIFICATION_MAX_BYTES" in (job.failed_reason or "")
    assert NotificationService(redis_client).recent(1) == []


def test_nan_and_infinity_are_refused_wherever_json_is_kept(redis_client: redis.Redis) -> None:
    """Session metadata and a notification's payload took NaN, which a page's
    JSON.parse refuses: the whole message was lost to it."""
    from tests.support.jobs import progress

    with pytest.raises(ValueError, match="progress must be JSON without NaN or Infinity"):
        progress.update_progress({"done": float("nan")})
    sessions = SessionService(redis_client)
    with pytest.raises(ValueError, match="session metadata must be JSON without NaN"):
        sessions.create(2, {"score": float("nan")})
    assert sessions.get_user_sessions(2) == set()
    with pytest.raises(UnrecoverableError, match="payload must be JSON without NaN"):
        NotificationService(redis_client).send(2, "odds", {"odds": float("inf")})
    assert NotificationService(redis_client).recent(2) == []

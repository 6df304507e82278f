"""send-notification: live on pub/sub, kept in a capped list for reconnecting clients."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import redis

from csgoflip_jobs import JobOptionsError, JobQueue
from csgoflip_jobs.keys import BROADCAST_CHANNEL, user_channel
from csgoflip_jobs.notifications.service import NotificationService
from tests.support.polling import wait_for_state, wait_until
from tests.support.workers import WorkerProcess


def test_a_notification_job_reaches_a_subscriber_and_the_recent_list(
    workers: Callable[..., WorkerProcess], redis_client: redis.Redis
) -> None:
    workers()
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(user_channel(7))
    wait_until(lambda: pubsub.get_message(timeout=0.1) is None, 1)  # subscription settled
    queue = JobQueue("notification")
    job_id = queue.add(
        "send-notification", {"user_id": 7, "type": "case-opened", "payload": {"item": "AK"}}
    )
    message = wait_until(lambda: pubsub.get_message(timeout=0.2), 10)
    event = json.loads(message["data"])
    assert (event["user_id"], event["type"], event["payload"]) == (7, "case-opened", {"item": "AK"})
    wait_for_state(queue, job_id, "completed", 5)
    recent = NotificationService(redis_client).recent(7)
    assert [n.id for n in recent] == [event["id"]]


def test_site_wide_events_go_to_the_broadcast_channel(redis_client: redis.Redis) -> None:
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(BROADCAST_CHANNEL)
    wait_until(lambda: pubsub.get_message(timeout=0.1) is None, 1)
    sent = NotificationService(redis_client).send(None, "jackpot", {"amount": 1000})
    message = wait_until(lambda: pubsub.get_message(timeout=0.2), 5)
    assert json.loads(message["data"])["id"] == sent.id


def test_the_recent_list_keeps_only_the_newest(redis_client: redis.Redis) -> None:
    service = NotificationService(redis_client, keep=3)
    sent = [service.send(1, "tick", {"n": n}) for n in range(5)]
    assert [n.payload["n"] for n in service.recent(1)] == [4, 3, 2]
    assert redis_client.llen("notifications:user:1:recent") == 3
    assert sent[-1].id == service.recent(1)[0].id


def test_bad_notification_data_is_refused_at_enqueue(redis_client: redis.Redis) -> None:
    with pytest.raises(JobOptionsError, match="bad data for 'send-notification'"):
        JobQueue("notification").add("send-notification", {"user": 7, "type": "x"})


def test_bad_values_fail_the_job_once(
    workers: Callable[..., WorkerProcess], redis_client: redis.Redis
) -> None:
    workers()
    queue = JobQueue("notification")
    job_id = queue.add("send-notification", {"user_id": -1, "type": "x"})
    job = wait_for_state(queue, job_id, "failed", 10)
    assert job.failed_reason == (
        "UnrecoverableError: user_id must be a positive integer or None, not -1"
    )
    assert job.attempts_made == 1

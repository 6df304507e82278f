"""send-notification: live on pub/sub, kept in a capped list for reconnecting clients."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import redis

from csgoflip_jobs import JobOptionsError, JobQueue
from csgoflip_jobs.notifications.service import NotificationService
from csgoflip_jobs.settings import Settings
from tests.support.polling import wait_for_state, wait_until
from tests.support.redis_servers import RedisServer
from tests.support.workers import WorkerProcess


def test_a_notification_job_reaches_a_subscriber_and_the_recent_list(
    workers: Callable[..., WorkerProcess], redis_client: redis.Redis
) -> None:
    workers()
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(NotificationService().channel(7))
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
    pubsub.subscribe(NotificationService().channel(None))
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


def test_environments_sharing_a_redis_server_never_hear_each_other(
    servers: Callable[..., RedisServer],
) -> None:
    """Pub/sub channels are server-wide: two environments on databases 0 and 1 of one
    server heard each other's live notifications while the channels had one name."""
    server = servers()
    base = server.url.rsplit("/", 1)[0]
    environments = {}
    for database in (0, 1):
        namespace = Settings(redis_url=f"{base}/{database}").channel_namespace
        client = redis.Redis.from_url(f"{base}/{database}")
        environments[database] = NotificationService(client, namespace=namespace)
    assert environments[0].channel(7) == "notifications:user:7"  # database 0: the original
    assert environments[1].channel(7) == "db1:notifications:user:7"
    assert Settings(pubsub_namespace="staging").channel_namespace == "staging:"
    # Through Sentinels (one URL per sentinel joined by ";") the database was lost.
    for sentinels in ("10.0.0.1:26379", "10.0.0.1:26379,10.0.0.2:26379"):
        settings = Settings(redis_sentinels=sentinels, redis_sentinel_master="main", redis_db=3)
        assert settings.channel_namespace == "db3:", sentinels
    listener = redis.Redis.from_url(f"{base}/0").pubsub(ignore_subscribe_messages=True)
    listener.subscribe(environments[0].channel(7), environments[0].channel(None))
    wait_until(lambda: listener.get_message(timeout=0.1) is None, 1)
    environments[1].send(7, "balance", {"amount": 1})
    environments[1].send(None, "jackpot", {"amount": 2})
    assert listener.get_message(timeout=0.5) is None  # database 1's events stay there
    mine = environments[0].send(7, "balance", {"amount": 3})
    message = wait_until(lambda: listener.get_message(timeout=0.2), 5)
    assert json.loads(message["data"])["id"] == mine.id
    listener.close()

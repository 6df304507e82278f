"""The platform's channel closing under a running job (the broker connection dropped,
as in a Sentinel failover, and Celery made a new one): what the job's message does.

A real worker hit this: a job raised ``Reject(requeue=True)`` because Redis was gone,
Celery's reject ran after the channel had closed, and kombu's requeue, needing the
closed channel's connection, stopped the worker ("Unrecoverable error").
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import kombu
import redis
from celery.worker import state as worker_state
from kombu.simple import SimpleQueue

from csgoflip_jobs.engine.celery_ext.transport import Transport

QUEUE = "closed-channel-test"
VISIBILITY_TIMEOUT_S = 1


class RunningRequest:
    """What Celery's worker state holds of a request that runs (weakly referenced)."""

    def __init__(self, message: Any) -> None:
        self.id = self.name = message.delivery_tag
        self.message = message


@contextmanager
def running(message: Any) -> Iterator[None]:
    """Celery's worker state says a job of ``message`` runs (as it does while a pool
    process runs it), so closing the channel keeps the message unacked."""
    request = RunningRequest(message)
    worker_state.task_accepted(request)
    try:
        yield
    finally:
        worker_state.task_ready(request)


def test_a_requeue_after_the_channel_closed_is_left_to_the_visibility_sweep(
    redis_url: str, redis_client: redis.Redis
) -> None:
    options = {"visibility_timeout": VISIBILITY_TIMEOUT_S}
    with kombu.Connection(redis_url, transport=Transport, transport_options=options) as conn:
        conn.SimpleQueue(QUEUE).put({"n": 1})
        channel = conn.channel()
        message = SimpleQueue(channel, QUEUE).get(timeout=5)
        tag = message.delivery_tag
        with running(message):
            channel.close()
            assert redis_client.hexists("unacked", tag), "closing put back a running job"
            message.reject(requeue=True)  # raised AttributeError, stopping the worker

        assert redis_client.hexists("unacked", tag), "the message was dropped"
        assert redis_client.llen(QUEUE) == 0
        time.sleep(VISIBILITY_TIMEOUT_S + 0.2)
        sweeper = conn.channel()
        try:
            sweeper.qos.restore_visible(interval=1)
            again = SimpleQueue(sweeper, QUEUE).get(timeout=5)
            assert again.payload == {"n": 1}
            again.ack()
        finally:
            sweeper.close()
    assert not redis_client.hexists("unacked", tag)


def test_an_ack_after_the_channel_closed_still_lands(
    redis_url: str, redis_client: redis.Redis
) -> None:
    with kombu.Connection(redis_url, transport=Transport) as conn:
        conn.SimpleQueue(QUEUE).put({"n": 2})
        channel = conn.channel()
        message = SimpleQueue(channel, QUEUE).get(timeout=5)
        with running(message):
            channel.close()
            message.ack()
    assert not redis_client.hexists("unacked", message.delivery_tag)
    assert redis_client.llen(QUEUE) == 0

"""Bare Celery with the same guarantees as the platform, for side-by-side throughput.

Redis broker and result backend, JSON, late acks, requeue on a lost worker,
task events on, the same prefetch: what a plain Celery set-up with these
guarantees does, without BullMQ's retention, job records and durable delays.

    celery -A benchmarks.bare_celery worker -Q bare ...
"""

from __future__ import annotations

import os

import redis
from celery import Celery

URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

bare = Celery("bare", broker=URL, backend=URL)
bare.conf.update(
    task_serializer="json",
    accept_content=["json"],
    result_serializer="json",
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    worker_send_task_events=True,
    task_send_sent_event=True,
    task_default_queue="bare",
    broker_transport_options={"visibility_timeout": 30},
    # kombu's stock Redis transport, also in a process that imported csgoflip_jobs.
    broker_transport="kombu.transport.redis:Transport",
)
_client = redis.Redis.from_url(URL)


@bare.task(name="bare-noop")
def noop(n: int = 0) -> int:
    """Count one finished job."""
    _client.incr("bench:done")
    return n

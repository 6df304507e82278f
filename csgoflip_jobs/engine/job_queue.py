"""``JobQueue``: BullMQ's ``Queue`` API over Celery, for the web app and operators.

    queue = JobQueue("payment")
    queue.add("process-withdrawal", {"withdrawal_id": 42}, delay=5000, priority=1)
    queue.get_waiting(0, 49)
    queue.wait_until_finished(job_id, timeout_s=30)

Options and units are BullMQ's (milliseconds; :mod:`csgoflip_jobs.engine.options`).
Every call is written once, as steps (:mod:`~csgoflip_jobs.engine.queue_reads`,
:mod:`~csgoflip_jobs.engine.queue_changes`): :class:`JobQueue` runs them on redis-py,
:class:`AsyncJobQueue` (``csgoflip_jobs.aio.JobQueue``) on redis.asyncio, so both
send the same scripts, keys, arguments and messages. Every call raises the
BrokerError family when Redis cannot answer.
"""

from __future__ import annotations

import redis
import redis.asyncio as aioredis

from csgoflip_jobs.engine.queue_base import default_app, queue_names, require_state
from csgoflip_jobs.engine.queue_changes import QueueChanges
from csgoflip_jobs.helpers.redis_calls import AsyncRunner, SyncRunner

__all__ = ["AsyncJobQueue", "JobQueue", "default_app", "queue_names", "require_state"]


class JobQueue(QueueChanges[redis.Redis], SyncRunner):
    """One of the app's queues, with BullMQ's options and defaults."""


class AsyncJobQueue(QueueChanges[aioredis.Redis], AsyncRunner):
    """:class:`JobQueue` for asyncio: the same calls, awaited."""

"""What every queue operation needs: the queue's app, name, keys and bounds.

The operations themselves are steps (:mod:`csgoflip_jobs.helpers.redis_calls`) in
:mod:`~csgoflip_jobs.engine.queue_reads` and :mod:`~csgoflip_jobs.engine.queue_changes`,
written once for ``JobQueue`` and its asyncio twin.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import cache

from celery import Celery
from celery.app.utils import find_app

from csgoflip_jobs import keys
from csgoflip_jobs.engine.errors import JobStateError
from csgoflip_jobs.engine.job import Job
from csgoflip_jobs.engine.options import MAX_PRIORITY_LEVEL
from csgoflip_jobs.engine.producer import Durability
from csgoflip_jobs.helpers.connection import broker_errors
from csgoflip_jobs.helpers.redis_calls import C, RedisOps
from csgoflip_jobs.settings import Settings, get_settings

BATCH = 1000
"""Jobs handled by one call of the scripts that work through a whole queue."""


def queue_names(app: Celery) -> tuple[str, ...]:
    """The queues ``app`` defines (its ``task_queues``), in their configured order."""
    return tuple(queue.name for queue in app.conf.task_queues or ())


@cache
def _app_at(path: str) -> Celery:
    app: Celery = find_app(path)
    return app


def default_app() -> Celery:
    """The Celery app CELERY_APP names (``csgoflip_jobs.celery_app:app`` unless set)."""
    return _app_at(get_settings().celery_app)


@dataclass(frozen=True)
class Limits:
    """The bounds every state change writes with (from the settings)."""

    events_max_len: int
    metrics_max_minutes: int
    job_logs_max: int
    job_max_bytes: int
    durability: Durability

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        """EVENTS_MAX_LEN, METRICS_MAX_MINUTES, JOB_LOGS_MAX, JOB_MAX_BYTES and
        REDIS_MIN_REPLICAS_ACK (REDIS_REPLICA_ACK_TIMEOUT_MS)."""
        return cls(
            settings.events_max_len,
            settings.metrics_max_minutes,
            settings.job_logs_max,
            settings.job_max_bytes,
            Durability(settings.redis_min_replicas_ack, settings.redis_replica_ack_timeout_ms),
        )


class QueueBase(RedisOps[C]):
    """One of the app's queues. ``app`` defaults to :func:`default_app`; ``name`` must
    be one of its ``task_queues`` (ValueError otherwise)."""

    def __init__(self, name: str, *, app: Celery | None = None, client: C | None = None) -> None:
        super().__init__(client)
        app = app or default_app()
        names = queue_names(app)
        if name not in names:
            listed = ", ".join(names) or "none (task_queues is empty)"
            raise ValueError(f"unknown queue {name!r}; the queues are {listed}")
        if ":" in name:
            # Its keys would read like another queue's: "a:job" + ":delayed" is a job's
            # record of queue "a".
            raise ValueError(f"a queue name cannot hold ':' ({name!r})")
        self.name = name
        self.app = app
        self.limits = Limits.from_settings(get_settings())
        levels = range(MAX_PRIORITY_LEVEL + 1)
        self.lists: Sequence[str] = [keys.priority_list_key(name, level) for level in levels]
        self.events = keys.events_key(name)

    def job_key(self, job_id: str) -> str:
        """The record of this queue's job ``job_id`` (ids are per queue)."""
        return keys.job_key(self.name, job_id)

    def _errors(self) -> AbstractContextManager[None]:
        """A Redis that cannot answer raises the BrokerError family, naming its URL."""
        return broker_errors(self.app.conf.broker_url)


def require_state(job: Job | None, job_id: str, *allowed: str) -> Job:
    """``job`` when it exists and is in one of ``allowed``; else JobStateError saying why."""
    if job is None:
        raise JobStateError(f"job {job_id!r} does not exist (never added, removed or trimmed)")
    if job.state not in allowed:
        raise JobStateError(f"job {job_id!r} is {job.state}, not {' or '.join(allowed)}")
    return job

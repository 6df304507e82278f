"""``JobQueue``: BullMQ's ``Queue`` API over Celery, for the web app and operators.

    queue = JobQueue("payment")
    queue.add("process-withdrawal", {"withdrawal_id": 42}, delay=5000, priority=1)
    queue.get_waiting(0, 49)
    queue.wait_until_finished(job_id, timeout_s=30)

Options and units are BullMQ's (milliseconds; :mod:`csgoflip_jobs.engine.options`).
Reads and changes are the steps of :mod:`csgoflip_jobs.engine.queue_ops`, shared
with the asyncio API; every call raises a BrokerError when Redis cannot answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import Any, TypeVar

import redis
from celery import Celery
from celery.app.utils import find_app

from csgoflip_jobs.engine import events
from csgoflip_jobs.engine.errors import JobOptionsError
from csgoflip_jobs.engine.job import Job
from csgoflip_jobs.engine.options import parse_options
from csgoflip_jobs.engine.producer import OPTION_NAMES, add_jobs, prepare
from csgoflip_jobs.engine.queue_ops import Limits, QueueOps, require_state
from csgoflip_jobs.helpers.arguments import whole_number
from csgoflip_jobs.helpers.connection import broker_client, broker_errors
from csgoflip_jobs.helpers.redis_calls import Steps, run
from csgoflip_jobs.settings import get_settings

T = TypeVar("T")

WAIT_BLOCK_S = 1.0
"""Longest one wait for an event blocks before the job's state is read again."""


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


class JobQueue:
    """One of the app's queues, with BullMQ's options and defaults.

    ``app`` defaults to :func:`default_app`; ``name`` must be one of its
    ``task_queues`` (ValueError otherwise).
    """

    def __init__(
        self, name: str, *, app: Celery | None = None, client: redis.Redis | None = None
    ) -> None:
        app = app or default_app()
        names = queue_names(app)
        if name not in names:
            listed = ", ".join(names) or "none (task_queues is empty)"
            raise ValueError(f"unknown queue {name!r}; the queues are {listed}")
        self.name = name
        self._app = app
        self._client = client
        self._ops = QueueOps(name, Limits.from_settings(get_settings()))

    @property
    def client(self) -> redis.Redis:
        """The queue Redis client."""
        return self._client or broker_client()

    def _run(self, steps: Steps[T]) -> T:
        with broker_errors(self._app.conf.broker_url):
            return run(self.client, steps)

    # --- adding ----------------------------------------------------------------------
    def add(
        self,
        job_name: str,
        data: Mapping[str, Any] | None = None,
        *,
        delay: int | None = None,
        priority: int | None = None,
        attempts: int | None = None,
        backoff: int | Mapping[str, Any] | None = None,
        remove_on_complete: bool | int | None = None,
        remove_on_fail: bool | int | None = None,
        job_id: str | None = None,
    ) -> str:
        """Enqueue one job and return its id; an existing ``job_id`` is not added again.

        Raises JobOptionsError for bad input, and a BrokerError when Redis cannot be
        reached in time, refuses the password, or is out of memory.
        """
        options = parse_options(
            delay=delay,
            priority=priority,
            attempts=attempts,
            backoff=backoff,
            remove_on_complete=remove_on_complete,
            remove_on_fail=remove_on_fail,
            job_id=job_id,
        )
        return self._add([(job_name, data, options)])[0]

    def add_bulk(self, jobs: Iterable[Mapping[str, Any]]) -> list[str]:
        """Enqueue many jobs in one round trip: ``[{"name", "data", "opts": {...}}, ...]``.

        Every job is validated before any is sent, so bad input enqueues nothing.
        """
        prepared = [prepare(i, job) for i, job in enumerate(jobs)]
        return self._add(prepared) if prepared else []

    def _add(self, jobs: list[Any]) -> list[str]:
        return add_jobs(self._app, self.client, self.name, jobs, get_settings().job_max_bytes)

    # --- reading -----------------------------------------------------------------------
    def get_job(self, job_id: str) -> Job | None:
        """The job with this id, in whatever state, or None when unknown or removed."""
        return self._run(self._ops.get_job(job_id))

    def get_jobs(
        self, states: Sequence[str], start: int = 0, end: int = -1, asc: bool = False
    ) -> list[Job]:
        """The jobs of each state in turn (waiting, delayed, active, completed, failed,
        paused), each ranked ``start``..``end``; newest first unless ``asc``."""
        return self._run(self._ops.list_jobs(states, start, end, asc))

    def get_waiting(self, start: int = 0, end: int = -1) -> list[Job]:
        """Waiting jobs, the next to run first (none while the queue is paused)."""
        return self.get_jobs(["waiting"], start, end, asc=True)

    def get_delayed(self, start: int = 0, end: int = -1) -> list[Job]:
        """Delayed jobs (and retries waiting their backoff), the soonest due first."""
        return self.get_jobs(["delayed"], start, end, asc=True)

    def get_active(self, start: int = 0, end: int = -1) -> list[Job]:
        """Running jobs, the oldest start first."""
        return self.get_jobs(["active"], start, end, asc=True)

    def get_completed(self, start: int = 0, end: int = -1) -> list[Job]:
        """Retained completed jobs, newest first (ranks ``start``..``end`` inclusive)."""
        return self.get_jobs(["completed"], start, end)

    def get_failed(self, start: int = 0, end: int = -1) -> list[Job]:
        """Retained failed jobs, newest first (ranks ``start``..``end`` inclusive)."""
        return self.get_jobs(["failed"], start, end)

    def get_job_counts(self) -> dict[str, int]:
        """Jobs per state: waiting, delayed, active, completed, failed, paused.

        One atomic snapshot. Waiting includes jobs a worker has taken into its
        prefetch buffer but not started, so the counts add up to every job the queue
        holds; while the queue is paused its waiting jobs count as ``paused``.
        """
        return self._run(self._ops.counts())

    def get_job_logs(self, job_id: str, start: int = 0, end: int = -1) -> list[str]:
        """The lines a job's task logged (``self.log``), oldest first."""
        return self._run(self._ops.logs(job_id, start, end))

    def get_metrics(self, kind: str, start: int = 0, end: int = -1) -> dict[str, Any]:
        """Jobs ``"completed"`` or ``"failed"`` per minute: ``{"data": [...], "count",
        "total"}``, newest first with ``data[0]`` the current minute, kept for
        METRICS_MAX_MINUTES."""
        return self._run(self._ops.metrics(kind, start, end))

    def wait_until_finished(self, job_id: str, timeout_s: float = 30) -> Any:
        """The job's return value once it completed. Raises JobFailedError (with the
        failed reason) when it failed, TimeoutError when it did not finish within
        ``timeout_s``, JobNotFoundError when no job has this id."""
        timeout = float(timeout_s)
        return self._run(events.wait_until_finished(self._ops, job_id, timeout, WAIT_BLOCK_S))

    # --- changing ------------------------------------------------------------------------
    def remove(self, job_id: str) -> bool:
        """Remove a job in any state but running, with its result and logs; False when
        it is running or unknown. A removed waiting or delayed job never runs."""
        return self._run(self._ops.remove(job_id))

    def promote(self, job_id: str) -> bool:
        """Make a delayed job waiting now; False when it is not delayed."""
        return self._run(self._ops.promote(job_id))

    def change_delay(self, job_id: str, delay_ms: int) -> bool:
        """Make a delayed job due ``delay_ms`` from now; False when it is not delayed."""
        return self._run(self._ops.change_delay(job_id, delay_ms))

    def change_priority(self, job_id: str, priority: int) -> bool:
        """Give a waiting or delayed job another priority (1 highest, 0 none); False when
        it is neither or a worker already holds its message."""
        return self._run(self._ops.change_priority(job_id, priority))

    def pause(self) -> bool:
        """Stop every worker starting this queue's jobs (kept in Redis, so restarted
        workers stay paused); adds are still accepted and delayed jobs still come
        due. False when it was paused already."""
        return self._run(self._ops.pause(True))

    def resume(self) -> bool:
        """Let workers start this queue's jobs again; False when it was not paused."""
        return self._run(self._ops.pause(False))

    def is_paused(self) -> bool:
        """True while the queue is paused."""
        return self._run(self._ops.is_paused())

    def drain(self, delayed: bool = False) -> int:
        """Remove every waiting job (and, with ``delayed``, every delayed one); how many."""
        return self._run(self._ops.drain(delayed))[0]

    def clean(self, grace_ms: int, limit: int, state: str = "completed") -> list[str]:
        """Remove up to ``limit`` jobs in ``state`` (completed, failed, waiting or
        delayed) older than ``grace_ms`` (finished, or added, that long ago); their ids."""
        grace_ms = whole_number("grace_ms", grace_ms, minimum=0, error=JobOptionsError)
        limit = whole_number("limit", limit, error=JobOptionsError)
        if state in ("completed", "failed"):
            return self._run(self._ops.clean_finished(state, grace_ms, limit))
        if state not in ("waiting", "delayed"):
            raise JobOptionsError(
                f"clean takes completed, failed, waiting or delayed, not {state!r}"
            )
        seconds, micros = self.client.time()
        cutoff = seconds * 1000 + micros // 1000 - grace_ms
        removed: list[str] = []
        for job in self.get_jobs([state], asc=True):
            if len(removed) == limit:
                break
            if (job.timestamp or 0) < cutoff and self.remove(job.id):
                removed.append(job.id)
        return removed

    def obliterate(self, force: bool = False) -> int:
        """Delete the queue's jobs of every state and its own keys; how many jobs. Raises
        JobStateError while jobs run, unless ``force`` (their outcomes are dropped)."""
        return self._run(self._ops.obliterate(force))

    def retry_failed(self, job: Job) -> str:
        """Enqueue a failed job again under its id, name, data and options (no delay)."""
        require_state(job, job.id, "failed")
        options = {k: v for k, v in job.opts.items() if k in OPTION_NAMES and k != "delay"}
        self.remove(job.id)
        return self.add(job.name, job.data, job_id=job.id, **options)

"""``JobQueue``: BullMQ's ``Queue`` API over Celery, for the web app.

    queue = JobQueue("payment")
    queue.add("process-withdrawal", {"withdrawal_id": 42}, delay=5000, priority=1)

Options keep BullMQ's names and units (milliseconds). See
:mod:`csgoflip_jobs.engine.options` for validation and defaults.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, NoReturn

import redis
from celery import Celery
from celery.app.utils import find_app
from kombu.utils.uuid import uuid

from csgoflip_jobs import keys
from csgoflip_jobs.engine import scripts
from csgoflip_jobs.engine.bulk import TaskMessageTemplate
from csgoflip_jobs.engine.enqueue import JOB_HEADER, collect_enqueues
from csgoflip_jobs.engine.errors import JobOptionsError
from csgoflip_jobs.engine.job_task import JobTask
from csgoflip_jobs.engine.options import MAX_PRIORITY_LEVEL, JobOptions, encode_data, parse_options
from csgoflip_jobs.helpers.connection import as_text, broker_client, broker_error, broker_errors
from csgoflip_jobs.helpers.scripts import run_script
from csgoflip_jobs.settings import get_settings

CheckedJob = tuple[str, dict[str, Any], str, JobOptions]
"""A job ready to send: task name, data, data as JSON, options."""

_OPTION_NAMES = frozenset(
    {"delay", "priority", "attempts", "backoff", "remove_on_complete", "remove_on_fail", "job_id"}
)


@dataclass(frozen=True)
class Job:
    """One job as BullMQ shows it; timestamps are Unix milliseconds."""

    id: str
    name: str
    queue: str
    data: dict[str, Any]
    opts: dict[str, Any]
    state: str
    timestamp: int | None
    processed_on: int | None
    finished_on: int | None
    attempts_made: int
    returnvalue: Any
    failed_reason: str | None
    stacktrace: str | None

    @classmethod
    def from_record(cls, job_id: str, record: Mapping[Any, Any]) -> Job:
        """Build from the job's Redis hash (bytes or str, as the client returns)."""
        text = {as_text(k): as_text(v) for k, v in record.items()}
        return cls(
            id=job_id,
            name=text.get("name", ""),
            queue=text.get("queue", ""),
            data=json.loads(text.get("data", "{}")),
            opts=json.loads(text.get("opts", "{}")),
            state=text.get("state", "unknown"),
            timestamp=_int_or_none(text.get("timestamp")),
            processed_on=_int_or_none(text.get("processed_on")),
            finished_on=_int_or_none(text.get("finished_on")),
            attempts_made=int(text.get("attempts_made", 0)),
            returnvalue=json.loads(text["returnvalue"]) if "returnvalue" in text else None,
            failed_reason=text.get("failed_reason"),
            stacktrace=text.get("stacktrace"),
        )


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

    @property
    def client(self) -> redis.Redis:
        """The queue Redis client used for reads."""
        return self._client or broker_client()

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
        return self._send([(job_name, data, options)])[0]

    def add_bulk(self, jobs: Iterable[Mapping[str, Any]]) -> list[str]:
        """Enqueue many jobs in one round trip: ``[{"name", "data", "opts": {...}}, ...]``.

        Every job is validated before any is sent, so bad input enqueues nothing.
        """
        prepared = [self._prepare(i, job) for i, job in enumerate(jobs)]
        return self._send(prepared) if prepared else []

    def _prepare(self, index: int, job: Mapping[str, Any]) -> tuple[Any, Any, JobOptions]:
        if not isinstance(job, Mapping) or "name" not in job:
            raise JobOptionsError(f"job {index}: each bulk job needs a 'name'")
        opts = job.get("opts") or {}
        unknown = set(opts) - _OPTION_NAMES
        if unknown:
            raise JobOptionsError(f"job {index}: unknown options {sorted(unknown)}")
        try:
            return job["name"], job.get("data"), parse_options(**opts)
        except JobOptionsError as exc:
            raise JobOptionsError(f"job {index}: {exc}") from None

    def _send(self, jobs: list[tuple[Any, Any, JobOptions]]) -> list[str]:
        # A Redis that is down, paused, refuses the password or is full raises a
        # BrokerError within the connection settings' timeouts and retries.
        max_bytes = get_settings().job_max_bytes
        checked = [self._check(name, data, opts, max_bytes) for name, data, opts in jobs]
        with broker_errors(self._app.conf.broker_url):
            return self._publish(checked)

    def _publish(self, checked: list[CheckedJob]) -> list[str]:
        ids: list[str] = []
        # Celery builds the first message of each task and priority; the rest are
        # stamped from it (see csgoflip_jobs.engine.bulk).
        templates: dict[tuple[str, int], TaskMessageTemplate] = {}
        with collect_enqueues(self.client) as pending, self._app.producer_or_acquire() as producer:
            for name, data, data_json, opts in checked:
                job_id = opts.job_id or uuid()
                template = templates.get((name, opts.priority_level))
                if template is not None:
                    template.stamp(pending, job_id, data, data_json, opts)
                else:
                    self._app.send_task(
                        name,
                        kwargs=data,
                        task_id=job_id,
                        queue=self.name,
                        producer=producer,
                        priority=opts.priority_level,
                        headers={JOB_HEADER: opts.header()},
                    )
                    templates[(name, opts.priority_level)] = TaskMessageTemplate(pending)
                ids.append(job_id)
            outcomes = pending.run()
        refused = [i for i, outcome in enumerate(outcomes) if isinstance(outcome, Exception)]
        if refused:
            self._raise_partly_enqueued(ids, outcomes, refused)
        return ids

    def _raise_partly_enqueued(
        self, ids: list[str], outcomes: list[Any], refused: list[int]
    ) -> NoReturn:
        # Each job is stored whole or not at all, so the caller can be told exactly
        # which of the batch Redis holds and which to add again.
        first = outcomes[refused[0]]
        error = broker_error(first, self._app.conf.broker_url)
        if error is None:
            raise first
        stored = [
            job_id for job_id, o in zip(ids, outcomes, strict=True) if not isinstance(o, Exception)
        ]
        error.stored_ids, error.refused = stored, refused
        if len(ids) > 1:
            error.args = (
                f"{error} [{len(refused)} of {len(ids)} jobs refused (batch positions in "
                f".refused); the {len(stored)} stored are in .stored_ids]",
            )
        raise error from first

    def _check(
        self, job_name: object, data: object, opts: JobOptions, max_bytes: int
    ) -> CheckedJob:
        if not isinstance(job_name, str) or not job_name:
            raise JobOptionsError(f"job name must be a non-empty string, not {job_name!r}")
        _import_task_modules(self._app)
        if job_name not in self._app.tasks:
            raise JobOptionsError(f"no task is registered as {job_name!r}")
        checked, data_json = encode_data(data, max_bytes)
        task = self._app.tasks[job_name]
        if isinstance(task, JobTask):
            try:
                task.check_data((), checked)
            except TypeError as exc:
                raise JobOptionsError(f"bad data for {job_name!r}: {exc}") from None
        return job_name, checked, data_json, opts

    def get_job(self, job_id: str) -> Job | None:
        """The job with this id, in whatever state, or None when unknown or removed."""
        record = self.client.hgetall(keys.job_key(job_id))
        return Job.from_record(job_id, record) if record else None

    def remove(self, job_id: str) -> bool:
        """Remove a finished (completed or failed) job and its result, so its id can be
        used again; False when the job is unknown, queued or running."""
        removed = scripts.REMOVE_FINISHED(
            keys=[
                keys.job_key(job_id),
                keys.completed_key(self.name),
                keys.failed_key(self.name),
                f"{keys.CELERY_RESULT_KEY_PREFIX}{job_id}",
            ],
            args=[job_id],
            client=self.client,
        )
        return bool(removed)

    def retry_failed(self, job: Job) -> str:
        """Enqueue a failed job again under its id, name, data and options (no delay)."""
        if job.state != "failed":
            raise JobOptionsError(f"job {job.id} is {job.state}, not failed")
        options = {k: v for k, v in job.opts.items() if k in _OPTION_NAMES and k != "delay"}
        self.remove(job.id)
        return self.add(job.name, job.data, job_id=job.id, **options)

    def get_completed(self, start: int = 0, end: int = -1) -> list[Job]:
        """Retained completed jobs, newest first (ranks ``start``..``end`` inclusive)."""
        return self._finished(keys.completed_key(self.name), start, end)

    def get_failed(self, start: int = 0, end: int = -1) -> list[Job]:
        """Retained failed jobs, newest first (ranks ``start``..``end`` inclusive)."""
        return self._finished(keys.failed_key(self.name), start, end)

    def _finished(self, key: str, start: int, end: int) -> list[Job]:
        ids = [as_text(i) for i in self.client.zrevrange(key, start, end)]
        with self.client.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hgetall(keys.job_key(job_id))
            records = pipe.execute()
        return [Job.from_record(i, r) for i, r in zip(ids, records, strict=True) if r]

    def get_job_counts(self) -> dict[str, int]:
        """Jobs per state: waiting, delayed, active, completed, failed.

        One atomic snapshot. Waiting includes jobs a worker has taken into its
        prefetch buffer but not started, so the five add up to every job the
        queue holds.
        """
        levels = range(MAX_PRIORITY_LEVEL + 1)
        waiting, delayed, active, completed, failed = run_script(
            self.client,
            scripts.JOB_COUNTS,
            keys=[
                *(keys.priority_list_key(self.name, level) for level in levels),
                keys.delayed_key(self.name),
                keys.active_key(self.name),
                keys.completed_key(self.name),
                keys.failed_key(self.name),
                keys.KOMBU_UNACKED_KEY,
            ],
            args=[self.name, keys.JOB_KEY_PREFIX, JOB_HEADER],
        )
        return {
            "waiting": waiting,
            "delayed": delayed,
            "active": active,
            "completed": completed,
            "failed": failed,
        }


@cache
def _import_task_modules(app: Celery) -> None:
    # Once per process: Celery's import hook costs ~0.3 ms, too much for every job.
    app.loader.import_default_modules()


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value is not None else None

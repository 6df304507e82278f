"""Adding jobs: validate every job, then store them whole or say exactly which.

Every job of a call is checked (name registered, data a JSON object within
JOB_MAX_BYTES that fits the task's signature, options valid) before any is sent,
so bad input stores nothing. Celery builds the first message of each task and
priority; the rest are stamped from it (:mod:`csgoflip_jobs.engine.bulk`), and
all go out on one connection, streamed in chunks (:mod:`csgoflip_jobs.engine.enqueue`).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any, NoReturn

import redis
from celery import Celery
from kombu.utils.uuid import uuid

from csgoflip_jobs.engine.bulk import TaskMessageTemplate
from csgoflip_jobs.engine.enqueue import JOB_HEADER, collect_enqueues
from csgoflip_jobs.engine.errors import JobOptionsError
from csgoflip_jobs.engine.job_task import JobTask
from csgoflip_jobs.engine.options import JobOptions, encode_data, parse_options
from csgoflip_jobs.helpers.connection import broker_error, broker_errors

CheckedJob = tuple[str, dict[str, Any], str, JobOptions]
"""A job ready to send: task name, data, data as JSON, options."""

OPTION_NAMES = frozenset(
    {"delay", "priority", "attempts", "backoff", "remove_on_complete", "remove_on_fail", "job_id"}
)


def prepare(index: int, job: Mapping[str, Any]) -> tuple[Any, Any, JobOptions]:
    """One ``add_bulk`` entry (``{"name", "data", "opts"}``) as name, data and options."""
    if not isinstance(job, Mapping) or "name" not in job:
        raise JobOptionsError(f"job {index}: each bulk job needs a 'name'")
    opts = job.get("opts") or {}
    unknown = set(opts) - OPTION_NAMES
    if unknown:
        raise JobOptionsError(f"job {index}: unknown options {sorted(unknown)}")
    try:
        return job["name"], job.get("data"), parse_options(**opts)
    except JobOptionsError as exc:
        raise JobOptionsError(f"job {index}: {exc}") from None


def add_jobs(
    app: Celery,
    client: redis.Redis,
    queue: str,
    jobs: list[tuple[Any, Any, JobOptions]],
    max_bytes: int,
) -> list[str]:
    """Store ``jobs`` on ``queue``; their ids (an existing ``job_id`` is kept, not added
    again). A Redis that is down, paused, refuses the password or is full raises a
    BrokerError within the connection settings' timeouts and retries."""
    checked = [_check(app, name, data, opts, max_bytes) for name, data, opts in jobs]
    with broker_errors(app.conf.broker_url):
        return _publish(app, client, queue, checked)


def _publish(app: Celery, client: redis.Redis, queue: str, checked: list[CheckedJob]) -> list[str]:
    ids: list[str] = []
    templates: dict[tuple[str, int], TaskMessageTemplate] = {}
    with collect_enqueues(client) as pending, app.producer_or_acquire() as producer:
        for name, data, data_json, opts in checked:
            job_id = opts.job_id or uuid()
            template = templates.get((name, opts.priority_level))
            if template is not None:
                template.stamp(pending, job_id, data, data_json, opts)
            else:
                app.send_task(
                    name,
                    kwargs=data,
                    task_id=job_id,
                    queue=queue,
                    producer=producer,
                    priority=opts.priority_level,
                    headers={JOB_HEADER: opts.header()},
                )
                templates[(name, opts.priority_level)] = TaskMessageTemplate(pending)
            ids.append(job_id)
        outcomes = pending.run()
    refused = [i for i, outcome in enumerate(outcomes) if isinstance(outcome, Exception)]
    if refused:
        _raise_partly_added(app, ids, outcomes, refused)
    return ids


def _raise_partly_added(
    app: Celery, ids: list[str], outcomes: list[Any], refused: list[int]
) -> NoReturn:
    # Each job is stored whole or not at all, so the caller can be told exactly
    # which of the batch Redis holds and which to add again.
    first = outcomes[refused[0]]
    error = broker_error(first, app.conf.broker_url)
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
    app: Celery, job_name: object, data: object, opts: JobOptions, max_bytes: int
) -> CheckedJob:
    if not isinstance(job_name, str) or not job_name:
        raise JobOptionsError(f"job name must be a non-empty string, not {job_name!r}")
    _import_task_modules(app)
    if job_name not in app.tasks:
        raise JobOptionsError(f"no task is registered as {job_name!r}")
    checked, data_json = encode_data(data, max_bytes)
    task = app.tasks[job_name]
    if isinstance(task, JobTask):
        try:
            task.check_data((), checked)
        except TypeError as exc:
            raise JobOptionsError(f"bad data for {job_name!r}: {exc}") from None
    return job_name, checked, data_json, opts


@cache
def _import_task_modules(app: Celery) -> None:
    # Once per process: Celery's import hook costs ~0.3 ms, too much for every job.
    app.loader.import_default_modules()

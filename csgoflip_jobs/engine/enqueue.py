"""The ENQUEUE call of a task message, and capturing the messages Celery builds.

Every task message, however it was produced (``JobQueue.add``, ``app.send_task``, a
Celery retry or canvas), is stored by one ENQUEUE script call built here: the job's
record (name, queue, data, options) and the message, atomically, on its queue's
list or in the delayed set. :func:`capturing` lets the message templates
(:mod:`csgoflip_jobs.engine.messages`) have Celery build a message without sending
it: the platform's channel records it instead.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from csgoflip_jobs import keys
from csgoflip_jobs.engine import scripts
from csgoflip_jobs.helpers.redis_calls import ScriptCall

JOB_HEADER = "bullmq"
"""Message header carrying the BullMQ options of one try: attempt, attempts, backoff, delay,
and ``job_id`` when the job's id is not its Celery task id (:func:`keys.task_id_for`)."""


@dataclass
class Capture:
    """What Celery published within a :func:`capturing` block (nothing was sent)."""

    task: tuple[str, dict[str, Any]] | None = None
    """The queue and message of the last task message."""
    event: tuple[list[str], dict[str, Any]] | None = None
    """The topics and message of the last event (Celery's task-sent)."""


_capture: ContextVar[Capture | None] = ContextVar("csgoflip_capture", default=None)


@contextmanager
def capturing() -> Iterator[Capture]:
    """Within this block the platform's channel records what is published instead of
    sending it."""
    capture = Capture()
    token = _capture.set(capture)
    try:
        yield capture
    finally:
        _capture.reset(token)


def current_capture() -> Capture | None:
    """The capture of the enclosing :func:`capturing` block, if any."""
    return _capture.get()


def enqueue_call(
    queue: str,
    message: dict[str, Any],
    payload: str,
    list_key: str,
    events_max_len: int,
    fields: list[str] | None = None,
    tag: str | None = None,
    event: tuple[list[str], str] | None = None,
    sent_by_itself: bool = False,
) -> ScriptCall:
    """The ENQUEUE script call storing ``message`` (a kombu message dict; ``payload``
    its JSON, as stored) on ``queue``'s list ``list_key``. A caller that has them
    already passes the new job's record ``fields`` and the message's delivery ``tag``;
    ``event`` (pub/sub channels and the message) is Celery's task-sent event, published
    by the script once the job is stored. ``sent_by_itself``: the message has the id
    of the task being run by this process (a new run of it, see enqueue.lua)."""
    headers = message["headers"]
    options = headers.get(JOB_HEADER) or {}
    job_id = job_id_of(headers)
    kind = _kind(options, sent_by_itself)
    if kind == "retry":
        fields = ["attempt", str(options.get("attempt", 1))]
    elif fields is None:
        fields = job_fields(message, queue)
    return ScriptCall(
        scripts.ENQUEUE,
        [
            keys.job_key(queue, job_id),
            list_key,
            keys.delayed_key(queue),
            keys.wake_key(queue),
            keys.active_key(queue),
            keys.ready_key(queue),
            keys.events_key(queue),
            keys.completed_key(queue),
            keys.failed_key(queue),
            keys.job_logs_key(queue, job_id),
        ],
        [
            payload,
            int(options.get("delay") or 0),
            kind,
            job_id,
            message["properties"]["delivery_tag"] if tag is None else tag,
            events_max_len,
            *_event_arguments(event),
            *fields,
        ],
    )


def _kind(job_header: dict[str, Any], sent_by_itself: bool) -> str:
    """ENQUEUE's kind of a message (enqueue.lua): only a job added with its own id is
    refused whenever its id exists; Celery's own re-sends of a task id run again."""
    if job_header.get("retry"):
        return "retry"
    if sent_by_itself:
        return "rerun"
    return "own_id" if job_header.get("job_id") else "new"


def job_id_of(headers: dict[str, Any]) -> str:
    """The job id of a task message: the one the platform's header names, else the Celery
    task id (as the scripts' ``job_id_of``, lib/jobs.lua)."""
    return str((headers.get(JOB_HEADER) or {}).get("job_id") or headers["id"])


def own_id_identity(
    queue: str, job_id: str, job_header: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """The Celery task id and job header of a job added with its own ``job_id`` on
    ``queue``: ``keys.task_id_for(queue, job_id)``, and the header naming the job id
    (what :func:`job_id_of` reads back), so one id on two queues is two tasks."""
    return keys.task_id_for(queue, job_id), {**job_header, "job_id": job_id}


def _event_arguments(event: tuple[list[str], str] | None) -> list[str | int]:
    if event is None:
        return ["", 0]
    channels, event_message = event
    return [event_message, len(channels), *channels]


def job_fields(message: dict[str, Any], queue: str) -> list[str]:
    """Flattened field/value pairs of a new job's record, read off a Celery message."""
    headers = message["headers"]
    args, kwargs = _decode_body(message)
    data = kwargs if not args else {"args": args, **kwargs}
    job_header = headers.get(JOB_HEADER) or {}
    task_id = str(headers["id"])
    own_task_id = None if task_id == job_id_of(headers) else task_id
    return record_fields(
        headers["task"], queue, json.dumps(data), options_fields(job_header), own_task_id
    )


def record_fields(
    name: str, queue: str, data_json: str, options: list[str], task_id: str | None = None
) -> list[str]:
    """Flattened field/value pairs of a new job's record (``options`` from
    :func:`options_fields`); ``task_id`` for a job whose Celery task id is not its job id."""
    fields = ["name", name, "queue", queue, "data", data_json, "attempt", "1", *options]
    return fields if task_id is None else [*fields, "task_id", task_id]


def options_fields(job_header: dict[str, Any]) -> list[str]:
    """The record's field/value pairs for a job's options (the same for equal options)."""
    opts = job_header.get("opts", {})
    fields = ["opts", json.dumps(opts)]
    for option in ("remove_on_complete", "remove_on_fail"):
        value = opts.get(option)
        if value is not None:
            fields += [option, json.dumps(value)]
    return fields


def _decode_body(message: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    body = message["body"]
    if message["properties"].get("body_encoding") == "base64":
        body = base64.b64decode(body)
    try:
        args, kwargs, _embed = json.loads(body)
    except (ValueError, TypeError):
        return [], {}
    return list(args), dict(kwargs)

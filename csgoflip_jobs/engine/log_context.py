"""Worker log lines that say which job they are about, as text or as JSON.

Every line a worker logs while running a job (the task's own lines and the platform's)
carries the job's id and queue, and its trace id when tracing is on: each record gets
``job_id``, ``job_queue``, ``trace_id``, and ``job``, the three as one text for the
line formats (empty outside a job). LOG_FORMAT=json makes Celery's handlers write one
JSON object per line (python-json-logger) with those fields.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import current_task, signals
from pythonjsonlogger.json import JsonFormatter

from csgoflip_jobs.engine import tracing
from csgoflip_jobs.engine.job_try import JobTry
from csgoflip_jobs.settings import get_settings

TEXT_FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s]%(job)s %(message)s"
"""Celery's worker line, with the job (`` job=<id> queue=<q>[ trace=<t>]``) when in one."""

TEXT_TASK_FORMAT = (
    "[%(asctime)s: %(levelname)s/%(processName)s] %(task_name)s[%(task_id)s]%(job)s: %(message)s"
)
"""Celery's task logger line, with the job."""

JSON_FIELDS = (
    "%(asctime)s %(levelname)s %(name)s %(processName)s %(message)s "
    "%(job_id)s %(job_queue)s %(trace_id)s"
)


def job_fields() -> dict[str, Any]:
    """The running job's fields for a log record (all empty outside a job)."""
    task = current_task
    request = getattr(task, "request", None) if task else None
    if request is None or not getattr(request, "id", None):
        return _NO_JOB
    job = JobTry.from_request(request)
    trace_id = tracing.current_trace_id()
    text = f" job={job.job_id} queue={job.queue}" + (f" trace={trace_id}" if trace_id else "")
    return {"job": text, "job_id": job.job_id, "job_queue": job.queue, "trace_id": trace_id}


_NO_JOB: dict[str, Any] = {"job": "", "job_id": None, "job_queue": None, "trace_id": None}


def _json_handlers(logger: logging.Logger, **_: Any) -> None:
    for handler in logger.handlers:
        handler.setFormatter(JsonFormatter(JSON_FIELDS))


def install() -> None:
    """Put the job's fields on every log record of this process (a record factory, so
    every handler's format may name them), and with LOG_FORMAT=json make Celery's
    handlers write JSON once it has set them up (idempotent)."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "csgoflip_job_fields", False):
        return

    def with_job_fields(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        record.__dict__.update(job_fields())
        return record

    with_job_fields.csgoflip_job_fields = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(with_job_fields)
    if get_settings().log_format == "json":
        signals.after_setup_logger.connect(_json_handlers, weak=False)
        signals.after_setup_task_logger.connect(_json_handlers, weak=False)

"""``Job``: one job as its record in Redis describes it, in BullMQ's terms."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from csgoflip_jobs.helpers.connection import as_text

STATES = ("waiting", "delayed", "active", "completed", "failed")
"""A job's states; a queue's jobs can be listed by each (and by ``paused``)."""


@dataclass(frozen=True)
class Job:
    """One job; timestamps are Unix milliseconds.

    ``attempts_made`` counts the tries that ended (failed or completed);
    ``attempt`` is the try the job is on (or last ran); ``progress`` is what the
    task last reported (a number or a JSON object), None before that.
    """

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
    progress: Any = None
    attempt: int = 1
    stalled: int = 0
    """How often a worker died while running this job."""
    due: int | None = None
    """When a delayed job becomes waiting (Unix ms); None unless delayed."""
    task_id: str = ""
    """Celery's id of the job's task (``app.AsyncResult(job.task_id)``): the job id, or
    ``<queue>:<job id>`` for a job added with its own id (job ids are per queue)."""

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
            progress=json.loads(text["progress"]) if "progress" in text else None,
            attempt=int(text.get("attempt", 1)),
            stalled=int(text.get("stalled", 0)),
            due=_int_or_none(text.get("due")),
            task_id=text.get("task_id", job_id),
        )

    def as_dict(self) -> dict[str, Any]:
        """Plain data, for JSON."""
        return dict(vars(self))


def _int_or_none(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        # A record written before delays were bounded may hold "1e+18" or "inf": show
        # the job (its time as None) rather than fail every listing of its queue.
        number = float(value)
        return int(number) if math.isfinite(number) else None

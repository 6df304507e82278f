"""The try a worker is running, as its message describes it: the one place that reads
the platform's header and Celery's delivery info off a request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from csgoflip_jobs.engine.enqueue import JOB_HEADER
from csgoflip_jobs.engine.options import DEFAULT_ATTEMPTS, Backoff


@dataclass(frozen=True)
class JobTry:
    """What the worker knows about the try it is running, read off the message."""

    job_id: str
    queue: str
    priority: int
    attempt: int
    attempts: int
    backoff: Backoff
    header: dict[str, Any]

    @classmethod
    def from_request(cls, request: Any) -> JobTry:
        """Read the try from a Celery request; messages without our header get the defaults."""
        header = dict(getattr(request, JOB_HEADER, None) or {})
        delivery = getattr(request, "delivery_info", None) or {}
        return cls(
            job_id=getattr(request, "id", None) or "",
            queue=delivery.get("routing_key") or "",
            priority=int(delivery.get("priority") or 0),
            attempt=int(header.get("attempt", 1)),
            attempts=int(header.get("attempts", DEFAULT_ATTEMPTS)),
            backoff=Backoff.parse(header.get("backoff")),
            header=header,
        )

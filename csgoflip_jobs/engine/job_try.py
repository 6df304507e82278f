"""The try a worker is running, as its message describes it: the one place that reads
the platform's header and Celery's delivery info off a request."""

from __future__ import annotations

import inspect
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from csgoflip_jobs.engine.enqueue import JOB_HEADER, job_id_of
from csgoflip_jobs.engine.options import DEFAULT_ATTEMPTS, MAX_ATTEMPTS, Backoff


@dataclass(frozen=True)
class JobTry:
    """What the worker knows about the try it is running, read off the message."""

    job_id: str
    """The job's id within its queue (the task id unless the job was given its own)."""
    task_id: str
    """Celery's id of the task (unique across queues)."""
    queue: str
    priority: int
    attempt: int
    attempts: int
    """Tries in all (``self.retry`` included)."""
    backoff: Backoff
    header: dict[str, Any]
    tag: str = ""
    """The delivery tag of the message being run ('' when unknown)."""
    retries_on_error: bool = True
    """Whether an exception of the task's body is followed by the next try (BullMQ's
    way); when False it fails the job at once (Celery's way), and only ``self.retry``
    tries again."""

    @classmethod
    def from_request(cls, request: Any, bullmq_queues: Collection[str] = ()) -> JobTry:
        """Read the try from a Celery request.

        A job added with BullMQ options (``JobQueue.add``) has them in its header. One
        sent without (``delay``, ``send_task``, canvas) gets BullMQ's defaults (3 tries,
        backoff 1 s then 2 s) on ``bullmq_queues``, and Celery's on any other queue:
        an exception fails it, and ``self.retry`` is bounded by ``max_retries`` (and
        MAX_ATTEMPTS).
        """
        header = dict(getattr(request, JOB_HEADER, None) or {})
        delivery = getattr(request, "delivery_info", None) or {}
        properties = getattr(request, "properties", None) or {}
        task_id = getattr(request, "id", None) or ""
        queue = delivery.get("routing_key") or ""
        if "attempts" in header:
            attempts, retries_on_error = int(header["attempts"]), True
        elif queue in bullmq_queues:
            attempts, retries_on_error = DEFAULT_ATTEMPTS, True
        else:
            attempts, retries_on_error = MAX_ATTEMPTS, False
        return cls(
            job_id=job_id_of({"id": task_id, JOB_HEADER: header}),
            task_id=task_id,
            queue=queue,
            priority=int(delivery.get("priority") or 0),
            attempt=int(header.get("attempt", 1)),
            attempts=attempts,
            backoff=Backoff.parse(header.get("backoff")),
            header=header,
            tag=str(properties.get("delivery_tag") or ""),
            retries_on_error=retries_on_error,
        )


STARTED_ON_DELIVERY_KEPT = 1000
"""Most verdicts kept for deliveries that DELIVER started but no task has run yet."""

_started_on_delivery: OrderedDict[str, int] = OrderedDict()


def record_started_on_delivery(tag: str, verdict: int) -> None:
    """DELIVER already marked the try of delivery ``tag`` started, with START's
    ``verdict``: the task takes it (:func:`take_started_on_delivery`) instead of sending
    START. Only for messages run at once in this process (the solo pool); verdicts of
    deliveries that never ran (revoked, bad data) are dropped oldest first."""
    _started_on_delivery[tag] = verdict
    if len(_started_on_delivery) > STARTED_ON_DELIVERY_KEPT:
        _started_on_delivery.popitem(last=False)


def take_started_on_delivery(tag: str) -> int | None:
    """START's verdict for delivery ``tag`` if DELIVER gave it (once), else None."""
    return _started_on_delivery.pop(tag, None) if tag else None


FITTING_NAMES_KEPT = 1000
"""Most sets of data names remembered per task as fitting its signature."""


def check_data(
    signature: inspect.Signature,
    fitting: set[frozenset[str]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:
    """Raise TypeError when a task of this ``signature`` cannot take this data.

    Whether keyword data fits depends only on its names, so the sets found to fit
    are remembered in ``fitting`` (up to FITTING_NAMES_KEPT of them).
    """
    if args:
        signature.bind(*args, **kwargs)
        return
    names = frozenset(kwargs)
    if names not in fitting:
        signature.bind(**kwargs)
        if len(fitting) < FITTING_NAMES_KEPT:
            fitting.add(names)

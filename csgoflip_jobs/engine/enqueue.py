"""Enqueueing in bulk: the Redis calls publishing collects, sent in chunks as they
come, and the job record's fields as read off a Celery message.

:func:`collect_enqueues` marks a block in which the platform's channel collects
its ENQUEUE calls (and Celery's task-sent events) instead of sending each one;
``add_bulk`` uses it to send thousands of jobs on one connection.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis

from csgoflip_jobs.helpers.scripts import StreamedPipeline

if TYPE_CHECKING:
    from csgoflip_jobs.engine.celery_ext.transport import Channel

JOB_HEADER = "bullmq"
"""Message header carrying the BullMQ options of one try: attempt, attempts, backoff, delay."""


@dataclass
class PendingEnqueues:
    """Redis calls collected while publishing, sent in chunks as they come (see
    :class:`~csgoflip_jobs.helpers.scripts.StreamedPipeline`)."""

    pipeline: StreamedPipeline
    enqueue_positions: list[int] = field(default_factory=list)
    last_task: tuple[Channel, str, dict[str, Any]] | None = None
    """The channel, queue and message of the last task message published."""
    last_event: tuple[list[str], dict[str, Any]] | None = None
    """The topics and message of the last event published (Celery's task-sent)."""

    def add_enqueue(self, call: Callable[[redis.client.Pipeline], None]) -> None:
        """Collect one job's ENQUEUE call."""
        self.enqueue_positions.append(len(self.pipeline))
        self.pipeline.add(call)

    def add_publish(self, topic: str, payload: str) -> None:
        """Collect one PUBLISH (an event)."""
        self.pipeline.add(publisher(topic, payload))

    def run(self) -> list[Any]:
        """Send what is left and read every reply. Per job, its ENQUEUE reply: 1 stored,
        0 not (its job_id exists), or the error Redis answered for it (out of memory...).
        The first error of any other call is raised."""
        replies = self.pipeline.finish(raise_on_error=False)
        enqueues = set(self.enqueue_positions)
        for position, reply in enumerate(replies):
            if position not in enqueues and isinstance(reply, Exception):
                raise reply
        return [replies[i] for i in self.enqueue_positions]


_collecting: ContextVar[PendingEnqueues | None] = ContextVar("csgoflip_collecting", default=None)


STREAM_CHUNK_CALLS = 512
"""Calls sent to Redis at a time while a bulk enqueue is still being built."""


@contextmanager
def collect_enqueues(client: redis.Redis) -> Iterator[PendingEnqueues]:
    """Within this block, publishing sends its Redis calls on one connection of
    ``client`` in chunks; call ``run()`` afterwards to send the rest and read the
    replies. Leaving the block without ``run()`` drops the connection."""
    pending = PendingEnqueues(StreamedPipeline(client, STREAM_CHUNK_CALLS))
    token = _collecting.set(pending)
    try:
        yield pending
    except BaseException:
        pending.pipeline.abandon()
        raise
    finally:
        _collecting.reset(token)


def job_fields(message: dict[str, Any], queue: str) -> list[str]:
    """Flattened field/value pairs of a new job's record, read off a Celery message."""
    headers = message["headers"]
    args, kwargs = _decode_body(message)
    data = kwargs if not args else {"args": args, **kwargs}
    job_header = headers.get(JOB_HEADER) or {}
    return record_fields(headers["task"], queue, json.dumps(data), options_fields(job_header))


def record_fields(name: str, queue: str, data_json: str, options: list[str]) -> list[str]:
    """Flattened field/value pairs of a new job's record (``options`` from
    :func:`options_fields`)."""
    return ["name", name, "queue", queue, "data", data_json, "attempt", "1", *options]


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


def collecting() -> PendingEnqueues | None:
    """The collector of the enclosing :func:`collect_enqueues` block, if any."""
    return _collecting.get()


def publisher(topic: str, payload: str) -> Callable[[redis.client.Pipeline], None]:
    """A pipeline call publishing ``payload`` on ``topic``."""

    def publish(pipe: redis.client.Pipeline) -> None:
        pipe.publish(topic, payload)

    return publish

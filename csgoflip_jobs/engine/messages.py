"""Task messages stamped from one Celery built: what ``add`` and ``add_bulk`` send.

Celery's ``send_task`` spends about 0.3 ms per message (routing, header and repr
building, an event per message). Instead, Celery builds one message per queue, task
and priority (captured, not sent: :func:`~csgoflip_jobs.engine.enqueue.capturing`),
once per process, and every job's message and task-sent event is stamped from it
with the fields that differ per job (id, data, options, delivery tag, time)
replaced. The copies are what Celery itself would have sent, so workers, Flower and
the job records cannot tell them apart; the sync and asyncio APIs send the very same
bytes. The event goes out from the job's ENQUEUE, once it is stored. Their JSON is
joined from pieces of the template's JSON rather than encoded whole again.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import re
import threading
import time
from functools import cache
from typing import Any

from celery import Celery
from kombu.utils.uuid import uuid

from csgoflip_jobs import keys
from csgoflip_jobs.engine.enqueue import (
    JOB_HEADER,
    Capture,
    capturing,
    enqueue_call,
    options_fields,
    own_id_identity,
    record_fields,
)
from csgoflip_jobs.engine.options import JobOptions
from csgoflip_jobs.helpers.redis_calls import ScriptCall

_EMBED_JSON = json.dumps({"callbacks": None, "errbacks": None, "chain": None, "chord": None})
"""What Celery puts beside args and kwargs in a task body when there is no workflow."""

_REPR_MAX_CHARS = 1024
"""Celery's default ``argsrepr_maxsize``: longest kwargs repr in a message or event."""


def _slot(name: str) -> str:
    # NUL characters never occur in what Celery writes; JSON shows them as \u0000.
    return f"\x00{name}\x00"


class JsonTemplate:
    """The JSON text of a value in which some strings are open slots (made with
    ``_slot``), filled per use with JSON text."""

    _SLOT = re.compile(r'"\\u0000(\w+)\\u0000"')

    def __init__(self, value: Any) -> None:
        parts = self._SLOT.split(json.dumps(value))
        # A str.format template: literal braces doubled, each slot a {field}.
        literals = [part.replace("{", "{{").replace("}", "}}") for part in parts[0::2]]
        fields = [f"{{{name}}}" for name in parts[1::2]]
        self._format = "".join(
            piece for pair in zip(literals, [*fields, ""], strict=True) for piece in pair
        )

    def fill(self, values: dict[str, str]) -> str:
        """The JSON text with each slot replaced by ``values[slot]`` (JSON text)."""
        return self._format.format_map(values)


def _delivery_tag() -> str:
    # Any unique string will do (kombu uses a uuid4); 128 random bits, cheaper.
    return os.urandom(16).hex()


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class TaskMessageTemplate:
    """A task message (and its task-sent event) Celery built for one queue, task and
    priority, ready to be stamped out for any number of jobs."""

    def __init__(self, capture: Capture, list_key: str) -> None:
        if capture.task is None:
            raise RuntimeError("no task message was published to copy")
        self._queue, self._message = capture.task
        self._list_key = list_key
        message = self._message
        self._json = JsonTemplate(
            {
                **message,
                "body": _slot("body"),
                "headers": {
                    **message["headers"],
                    "id": _slot("id"),
                    "root_id": _slot("id"),
                    "kwargsrepr": _slot("kwargsrepr"),
                    JOB_HEADER: _slot("job_header"),
                },
                "properties": {
                    **message["properties"],
                    "correlation_id": _slot("id"),
                    "delivery_tag": _slot("tag"),
                },
            }
        )
        self._event = self._event_templates(capture)
        # Jobs mostly share their options: encode each set of options once.
        self._options: dict[JobOptions, tuple[dict[str, Any], str, list[str]]] = {}

    def _event_templates(
        self, capture: Capture
    ) -> tuple[list[str], JsonTemplate, JsonTemplate] | None:
        if capture.event is None:
            return None
        topics, event_message = capture.event
        event = json.loads(base64.b64decode(event_message["body"]))
        if event.get("uuid") != self._message["headers"]["id"]:
            return None  # not this task's task-sent event
        body = JsonTemplate(
            {
                **event,
                "uuid": _slot("id"),
                "root_id": _slot("id"),
                "kwargs": _slot("kwargsrepr"),
                "timestamp": _slot("timestamp"),
            }
        )
        outer = JsonTemplate(
            {
                **event_message,
                "body": _slot("body"),
                "properties": {**event_message["properties"], "delivery_tag": _slot("tag")},
            }
        )
        return topics, body, outer

    def stamp(
        self,
        job_id: str,
        data: dict[str, Any],
        data_json: str,
        opts: JobOptions,
        events_max_len: int,
    ) -> ScriptCall:
        """The ENQUEUE storing one more job (``data_json``: ``json.dumps(data)``) and
        sending its task-sent event. A job given its own id (``opts.job_id``) has the
        task id and header :func:`own_id_identity` gives; any other's task id is its id."""
        shared_opts = opts if opts.job_id is None else dataclasses.replace(opts, job_id=None)
        encoded = self._options.get(shared_opts)
        if encoded is None:
            header = opts.header()
            encoded = self._options[shared_opts] = (
                header,
                json.dumps(header),
                options_fields(header),
            )
        job_header, job_header_json, option_fields = encoded
        task_id, own_task_id = job_id, None
        if opts.job_id is not None:
            own_task_id, job_header = own_id_identity(self._queue, job_id, job_header)
            task_id, job_header_json = own_task_id, json.dumps(job_header)
        name = self._message["headers"]["task"]
        fields = record_fields(name, self._queue, data_json, option_fields, own_task_id)
        tag = _delivery_tag()
        values = {
            "id": json.dumps(task_id),
            "kwargsrepr": json.dumps(repr(data)[:_REPR_MAX_CHARS]),
            "job_header": job_header_json,
            "body": f'"{_b64(f"[[], {data_json}, {_EMBED_JSON}]")}"',
            "tag": json.dumps(tag),
        }
        # enqueue_call reads the ids and options off the message.
        message = {
            **self._message,
            "headers": {**self._message["headers"], "id": task_id, JOB_HEADER: job_header},
        }
        payload = self._json.fill(values)
        return enqueue_call(
            self._queue,
            message,
            payload,
            self._list_key,
            events_max_len,
            fields,
            tag,
            self._event_message(values),
        )

    def _event_message(self, values: dict[str, str]) -> tuple[list[str], str] | None:
        if self._event is None:
            return None
        topics, body, outer = self._event
        values["timestamp"] = repr(time.time())
        values["body"] = f'"{_b64(body.fill(values))}"'
        values["tag"] = f'"{_delivery_tag()}"'
        return topics, outer.fill(values)


class MessageTemplates:
    """One app's templates, built on first use and kept for the process (thread-safe).

    Building one has Celery produce a real message through the platform's channel,
    captured instead of sent; it borrows a broker connection (one round trip).
    """

    def __init__(self, app: Celery) -> None:
        self._app = app
        self._built: dict[tuple[str, str, int], TaskMessageTemplate] = {}
        self._lock = threading.Lock()

    def missing(self, queue: str, wanted: set[tuple[str, int]]) -> set[tuple[str, int]]:
        """The (task, priority level) pairs of ``wanted`` without a template yet."""
        return {pair for pair in wanted if (queue, *pair) not in self._built}

    def build(self, queue: str, wanted: set[tuple[str, int]]) -> None:
        """Build the templates of ``wanted`` (task, priority level) pairs not built yet."""
        with self._lock:
            for name, level in self.missing(queue, wanted):
                self._built[(queue, name, level)] = self._make(queue, name, level)

    def get(self, queue: str, name: str, level: int) -> TaskMessageTemplate:
        """The template of ``name`` at priority ``level`` on ``queue`` (built if needed)."""
        template = self._built.get((queue, name, level))
        if template is None:
            self.build(queue, {(name, level)})
            template = self._built[(queue, name, level)]
        return template

    def _make(self, queue: str, name: str, level: int) -> TaskMessageTemplate:
        with capturing() as capture, self._app.producer_or_acquire() as producer:
            self._app.send_task(
                name,
                kwargs={},
                task_id=uuid(),
                queue=queue,
                producer=producer,
                priority=level,
                headers={JOB_HEADER: {}},
            )
        return TaskMessageTemplate(capture, keys.priority_list_key(queue, level))


@cache
def templates_of(app: Celery) -> MessageTemplates:
    """The process's templates of ``app``."""
    return MessageTemplates(app)

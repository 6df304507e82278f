"""Task messages for many jobs of one task, stamped from one Celery built.

Celery's ``send_task`` spends about 0.3 ms per message (routing, header and repr
building, an event per message), which caps a bulk enqueue near 3,000 jobs/s.
``add_bulk`` lets Celery build the first message of each task and priority, then
stamps the rest from it: the same message and task-sent event with the fields
that differ per job (id, data, options, delivery tag, time) replaced. The copies
are what Celery itself would have sent, so workers, Flower and the job records
cannot tell them apart. Their JSON is joined from pieces of the first message's
JSON rather than encoded whole again.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import re
import time
from typing import Any

from csgoflip_jobs.engine.celery_ext.transport import Channel
from csgoflip_jobs.engine.enqueue import JOB_HEADER, PendingEnqueues, options_fields, record_fields
from csgoflip_jobs.engine.options import JobOptions

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
    """The last task message (and task-sent event) collected in ``pending``, ready to
    be stamped out again for more jobs of the same task and priority."""

    def __init__(self, pending: PendingEnqueues) -> None:
        if pending.last_task is None:
            raise RuntimeError("no task message was published to copy")
        self._channel: Channel
        self._channel, self._queue, self._message = pending.last_task
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
        self._event = self._event_templates(pending)
        # Bulk jobs mostly share their options: encode each set of options once.
        self._options: dict[JobOptions, tuple[dict[str, Any], str, list[str]]] = {}

    def _event_templates(
        self, pending: PendingEnqueues
    ) -> tuple[list[str], JsonTemplate, JsonTemplate] | None:
        if pending.last_event is None:
            return None
        topics, event_message = pending.last_event
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
        pending: PendingEnqueues,
        job_id: str,
        data: dict[str, Any],
        data_json: str,
        opts: JobOptions,
    ) -> None:
        """Collect the ENQUEUE call (and the task-sent event) of one more job
        (``data_json``: ``json.dumps(data)``)."""
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
        values = {
            "id": json.dumps(job_id),
            "kwargsrepr": json.dumps(repr(data)[:_REPR_MAX_CHARS]),
            "job_header": job_header_json,
            "body": f'"{_b64(f"[[], {data_json}, {_EMBED_JSON}]")}"',
            "tag": json.dumps(tag := _delivery_tag()),
        }
        # enqueue_call reads the id, options and priority off the message.
        message = {
            **self._message,
            "headers": {**self._message["headers"], "id": job_id, JOB_HEADER: job_header},
        }
        fields = record_fields(message["headers"]["task"], self._queue, data_json, option_fields)
        payload = self._json.fill(values)
        pending.add_enqueue(self._channel.enqueue_call(self._queue, message, fields, payload, tag))
        if self._event is not None:
            topics, body, outer = self._event
            values["timestamp"] = repr(time.time())
            values["body"] = f'"{_b64(body.fill(values))}"'
            values["tag"] = f'"{_delivery_tag()}"'
            event_payload = outer.fill(values)
            for topic in topics:
                pending.add_publish(topic, event_payload)

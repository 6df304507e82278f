"""kombu's Redis transport, extended with durable delays, job records and dedupe.

kombu delivers a message by LPUSHing one JSON document onto a queue's list
(``Channel._put``). This channel replaces that one step with the ``ENQUEUE``
script, which in the same atomic step

* writes the job's record (name, queue, data, options) when it is new, and
  refuses a ``job_id`` that already exists;
* either LPUSHes the document, or, for a delayed job, parks it in Redis in a
  sorted set scored by its due time. Workers move due jobs to their list with
  the ``PROMOTE`` script (see :mod:`csgoflip_jobs.worker_steps`), so a delayed
  job survives every worker being killed and is delivered exactly once.

Everything else (consuming, acks, visibility-timeout redelivery) is kombu's own.
:func:`use_for_redis_urls` installs it for ``redis://`` URLs (the Celery app does).
Messages that are not Celery tasks (control replies) take kombu's path unchanged.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from queue import Empty
from typing import Any

import kombu.transport as kombu_transport
import redis
from kombu.transport import redis as kombu_redis

from . import keys, lua_scripts

log = logging.getLogger(__name__)

JOB_HEADER = "bullmq"
"""Message header carrying the BullMQ options of one try: attempt, attempts, backoff, delay."""


@dataclass
class PendingEnqueues:
    """Redis calls collected while publishing, to run in one pipeline."""

    calls: list[Callable[[redis.client.Pipeline], None]] = field(default_factory=list)
    enqueue_positions: list[int] = field(default_factory=list)

    def run(self, client: redis.Redis) -> list[bool]:
        """Send every collected call in one round trip; True per job actually enqueued."""
        replies = lua_scripts.run_pipeline(client, self.calls)
        return [bool(replies[i]) for i in self.enqueue_positions]


_collecting: ContextVar[PendingEnqueues | None] = ContextVar("csgoflip_collecting", default=None)


@contextmanager
def collect_enqueues() -> Iterator[PendingEnqueues]:
    """Within this block, publishing only records its Redis calls; run them afterwards."""
    pending = PendingEnqueues()
    token = _collecting.set(pending)
    try:
        yield pending
    finally:
        _collecting.reset(token)


def job_fields(message: dict[str, Any], queue: str) -> list[str]:
    """Flattened field/value pairs of a new job's record, read off a Celery message."""
    headers = message["headers"]
    options = headers.get(JOB_HEADER) or {}
    args, kwargs = _decode_body(message)
    data = kwargs if not args else {"args": args, **kwargs}
    record = {
        "name": headers["task"],
        "queue": queue,
        "data": json.dumps(data),
        "opts": json.dumps(options.get("opts", {})),
        "attempt": "1",
    }
    for option in ("remove_on_complete", "remove_on_fail"):
        value = options.get("opts", {}).get(option)
        if value is not None:
            record[option] = json.dumps(value)
    return [item for pair in record.items() for item in pair]


def _decode_body(message: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    body = message["body"]
    if message["properties"].get("body_encoding") == "base64":
        body = base64.b64decode(body)
    try:
        args, kwargs, _embed = json.loads(body)
    except (ValueError, TypeError):
        return [], {}
    return list(args), dict(kwargs)


class MalformedMessageError(ValueError):
    """A queue held JSON that is not a kombu message (no properties, no body...)."""

    def __init__(self, payload: object, reason: Exception) -> None:
        super().__init__(f"not a kombu message ({reason!r})")
        self.payload = payload


class Message(kombu_redis.Channel.Message):  # type: ignore[misc]
    """kombu's message, raising MalformedMessageError for a payload of the wrong shape."""

    def __init__(self, payload: Any, channel: Any = None, **kwargs: Any) -> None:
        try:
            super().__init__(payload, channel=channel, **kwargs)
        except (KeyError, TypeError, AttributeError) as exc:
            raise MalformedMessageError(payload, exc) from exc


class Channel(kombu_redis.Channel):  # type: ignore[misc]
    """kombu Redis channel whose task messages go through the ENQUEUE script, and whose
    consumer sets aside (dead-letters) what it cannot parse instead of crashing."""

    Message = Message

    def _brpop_read(self, **options: Any) -> Any:
        # kombu would let a garbage item crash the worker: it is already popped,
        # so keep it for inspection, log it once, and carry on with the next one.
        try:
            return super()._brpop_read(**options)
        except json.JSONDecodeError as exc:
            self._dead_letter(exc.doc, f"not JSON: {exc}")
        except MalformedMessageError as exc:
            self._dead_letter(json.dumps(exc.payload, default=str), str(exc))
        raise Empty()

    def _dead_letter(self, raw: str, reason: str) -> None:
        log.error("dropped an unreadable message (%s); kept in %s", reason, keys.DEAD_LETTERS_KEY)
        entry = json.dumps({"raw": raw[:10_000], "reason": reason, "at": time.time()})
        with self.conn_or_acquire() as client, client.pipeline(transaction=False) as pipe:
            pipe.lpush(keys.DEAD_LETTERS_KEY, entry)
            pipe.ltrim(keys.DEAD_LETTERS_KEY, 0, keys.DEAD_LETTERS_KEEP - 1)
            pipe.execute()

    def _put(self, queue: str, message: dict[str, Any], **kwargs: Any) -> None:
        headers = message.get("headers") or {}
        if "task" not in headers or "id" not in headers:
            super()._put(queue, message, **kwargs)
            return
        kwargs.pop("_publish_batch", None)  # our own collector batches instead
        call = self._enqueue_call(queue, message)
        pending = _collecting.get()
        if pending is not None:
            pending.enqueue_positions.append(len(pending.calls))
            pending.calls.append(call)
            return
        with self.conn_or_acquire() as client:
            if not lua_scripts.run_pipeline(client, [call])[0]:
                log.info("job %s already exists; not enqueued again", headers["id"])

    def _put_fanout(
        self, exchange: str, message: dict[str, Any], routing_key: str, **kwargs: Any
    ) -> None:
        pending = _collecting.get()
        if pending is None:
            super()._put_fanout(exchange, message, routing_key, **kwargs)
            return
        payload = kombu_redis.dumps(message)
        topics = self._get_publish_topics(exchange, routing_key)
        for topic in topics:
            pending.calls.append(_publisher(topic, payload))

    def _enqueue_call(self, queue: str, message: dict[str, Any]) -> Callable[[Any], None]:
        headers = message["headers"]
        options = headers.get(JOB_HEADER) or {}
        job_id = str(headers["id"])
        is_retry = bool(options.get("retry"))
        fields = (
            ["attempt", str(options.get("attempt", 1))] if is_retry else job_fields(message, queue)
        )
        list_key = self._q_for_pri(queue, self._get_message_priority(message, reverse=False))
        keys_ = [
            keys.job_key(job_id),
            list_key,
            keys.delayed_key(queue),
            keys.wake_key(queue),
            keys.active_key(queue),
        ]
        args = [
            kombu_redis.dumps(message),
            int(options.get("delay") or 0),
            1 if is_retry else 0,
            job_id,
            *fields,
        ]

        def call(pipe: Any) -> None:
            lua_scripts.queue_script(pipe, lua_scripts.ENQUEUE, keys_, args)

        return call


def _publisher(topic: str, payload: str) -> Callable[[redis.client.Pipeline], None]:
    def publish(pipe: redis.client.Pipeline) -> None:
        pipe.publish(topic, payload)

    return publish


class Transport(kombu_redis.Transport):  # type: ignore[misc]
    """The Redis transport with :class:`Channel`; set as Celery's ``broker_transport``."""

    Channel = Channel


def use_for_redis_urls() -> None:
    """Make ``redis://`` and ``rediss://`` broker URLs use this transport in this process.

    Registering under kombu's own scheme names (rather than a new scheme) keeps
    every tool that reads the broker URL working unchanged: Flower's broker
    page, ``celery inspect``, the worker banner. Other kombu users in the same
    process get this channel too; for anything but Celery task messages it is
    kombu's own.
    """
    for scheme in ("redis", "rediss"):
        kombu_transport.TRANSPORT_ALIASES[scheme] = f"{__name__}:Transport"
        kombu_transport._transport_cache.pop(scheme, None)

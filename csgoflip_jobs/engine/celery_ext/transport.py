"""kombu's Redis transport, extended with atomic delivery, durable delays, job
records and dedupe.

kombu delivers a message by LPUSHing one JSON document onto a queue's list
(``Channel._put``). This channel replaces that one step with the ``ENQUEUE``
script (:mod:`~csgoflip_jobs.engine.celery_ext.publishing`), which in the same atomic
step

* writes the job's record (name, queue, data, options) when it is new, refuses a
  ``job_id`` that already exists and a task id whose job has not finished yet, and
  starts a new run of a finished one (the kinds in ``lua/enqueue.lua``);
* either LPUSHes the document and one wake-up signal onto the queue's *ready*
  list, or, for a delayed job, parks it in Redis in a sorted set scored by its
  due time. Workers move due jobs to their list with the ``PROMOTE`` script
  (see :mod:`csgoflip_jobs.engine.celery_ext.job_keeper`), so a delayed job survives every
  worker being killed and is delivered exactly once.

Consuming takes a message and records it as unacked in one atomic step (the
``DELIVER`` script, see :class:`Channel`), so no message is ever held only in a
worker's memory; the same call carries the acks taken since the last one, and, in a
solo worker, marks the try started (what JobTask's START does otherwise). Rejects
and visibility-timeout redelivery are kombu's own.

:func:`install_transport` makes ``redis://`` and ``rediss://`` broker URLs use it
(the Celery app calls it when it loads its configuration). Messages that are not
Celery tasks (control replies) take kombu's path, plus a signal.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from queue import Empty
from typing import Any

import kombu.transport as kombu_transport
import redis
from kombu.transport import redis as kombu_redis
from redis.exceptions import NoScriptError

from csgoflip_jobs import keys
from csgoflip_jobs.engine import scripts
from csgoflip_jobs.engine.celery_ext.publishing import PublishingChannel
from csgoflip_jobs.engine.celery_ext.qos import CarriedAcks, QoS
from csgoflip_jobs.engine.job_try import record_started_on_delivery
from csgoflip_jobs.errors import ConfigError
from csgoflip_jobs.helpers.connection import as_text
from csgoflip_jobs.helpers.scripts import run_script
from csgoflip_jobs.settings import get_settings

DEAD_LETTERS_KEEP = 1000

log = logging.getLogger(__name__)


class MalformedMessageError(ValueError):
    """A queue held JSON that kombu cannot turn into a message (missing fields...)."""

    def __init__(self, payload: object, reason: Exception) -> None:
        super().__init__(f"not a kombu message ({reason!r})")
        self.payload = payload


class Message(kombu_redis.Channel.Message):  # type: ignore[misc]
    """kombu's message, raising MalformedMessageError for a payload of the wrong shape."""

    def __init__(self, payload: Any, channel: Any = None, **kwargs: Any) -> None:
        try:
            super().__init__(payload, channel=channel, **kwargs)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise MalformedMessageError(payload, exc) from exc


@dataclass(frozen=True)
class _SentCommand:
    """What the consuming connection is waiting for: a ready signal or a message."""

    kind: str  # "WAIT" (BRPOP on ready lists) or "DELIVER" (the script)
    queues: list[str]
    acks: list[str]  # the acked tags a DELIVER carries


class Channel(PublishingChannel):
    """kombu's Redis channel with atomic delivery and durable, deduplicated enqueues.

    Consuming: kombu BRPOPs a message and only then records it as unacked, so a
    worker crash or a Redis restart between the two loses the message. Here an
    idle worker BRPOPs a queue's *ready* list (one signal per message) and then
    takes the message with the ``DELIVER`` script, which records it as unacked in
    the same step. While messages keep coming, the worker sends ``DELIVER``
    straight away (one round trip per message, kombu needs two) and only blocks
    again when the queues are empty. A missing signal delays a message by at most
    ``brpop_timeout``: a wait that times out runs ``DELIVER`` anyway. Acks taken on
    the consuming thread ride on the next ``DELIVER`` (:meth:`carry_ack`).

    Publishing: task messages go through the ``ENQUEUE`` script (see the module
    docstring); other messages (control replies) take kombu's path plus a signal.
    """

    QoS = QoS
    Message = Message

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.global_keyprefix:
            raise ConfigError("the platform's Redis channel does not support global_keyprefix")
        # kombu creates its pool of plain connections on first use, normally the
        # first unacked write. DELIVER makes those writes here, so the first use
        # could come only as the channel closes, after kombu has dropped the
        # connection details: create the pool now.
        _ = self.pool
        self.recorded_tags: set[str] = set()
        self._no_ack_queues: set[str] = set()
        self._sent: _SentCommand | None = None
        self._more_expected = False
        self.carried_acks = CarriedAcks()
        self._poll_thread: int | None = None
        self.start_on_delivery = False
        """Mark each try started in the DELIVER that takes its message (set by the job
        keeper for a solo worker, which runs every message at once, in this process)."""

    def basic_consume(self, queue: str, *args: Any, **kwargs: Any) -> Any:
        no_ack = kwargs.get("no_ack", args[0] if args else False)
        # A no-ack consumer (e.g. control replies) never acks: record nothing for it.
        (self._no_ack_queues.add if no_ack else self._no_ack_queues.discard)(queue)
        return super().basic_consume(queue, *args, **kwargs)

    def _brpop_start(self, timeout: float | None = None) -> None:
        queues = self._queue_cycle.consume(len(self.active_queues))
        if not queues:
            return
        connection = self.client.connection
        self._in_poll = connection
        self._brpop_sent_at = time.monotonic()
        self._poll_thread = threading.get_ident()
        if self._more_expected or self.carried_acks:
            acks = self.carried_acks.take()
            self._sent = _SentCommand("DELIVER", queues, acks)
            script_keys, args = self._deliver_arguments(queues, take_signal=True, acks=acks)
            try:
                connection.send_command(
                    "EVALSHA", scripts.DELIVER.sha, len(script_keys), *script_keys, *args
                )
            except BaseException:
                self.carried_acks.give_back(acks)
                raise
        else:
            self._sent = _SentCommand("WAIT", queues, [])
            wait_s = self.brpop_timeout if timeout is None else timeout
            connection.send_command("BRPOP", *[keys.ready_key(q) for q in queues], wait_s or 0)

    def _brpop_read(self, **options: Any) -> bool:
        sent, self._sent = self._sent, None
        try:
            if sent is None:  # nothing of ours was pending: let kombu read it
                return bool(super()._brpop_read(**options))
            try:
                if sent.kind == "DELIVER":
                    try:
                        reply = self.client.parse_response(self.client.connection, "EVALSHA")
                    except BaseException:
                        # Dropping an entry again is harmless: carry them once more.
                        self.carried_acks.give_back(sent.acks)
                        raise
                else:
                    signal = self.client.parse_response(self.client.connection, "BRPOP")
                    # A signal, or the wait timed out (a signal may have gone
                    # missing): take a message now. After a signal, take no second
                    # one, so every other message still wakes another idle worker.
                    reply = self._deliver_now(sent.queues, take_signal=not signal)
            except NoScriptError:
                # Redis restarted without its script cache: load it, then go on.
                self.client.script_load(scripts.DELIVER.script)
                raise Empty() from None
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            except redis.ResponseError as exc:
                # Never let a server-side error stop the worker; the next wait retries.
                log.error("taking the next message failed: %s", exc)
                self._more_expected = False
                self._drop_acks_or_forget()  # not carried into another failing DELIVER
                raise Empty() from None
            return self._handle_delivery(sent.queues, reply)
        finally:
            self._in_poll = None
            self._flush_brpop_reauth()

    def _deliver_now(self, queues: list[str], take_signal: bool) -> Any:
        script_keys, args = self._deliver_arguments(queues, take_signal)
        return run_script(self.client, scripts.DELIVER, script_keys, args)

    def carry_ack(self, tag: str) -> bool:
        """Leave dropping an acked delivery's unacked entry to the next ``DELIVER`` when
        one follows at once: acked on the consuming thread, while it consumes and is
        not blocked waiting for a signal (its loop sends ``DELIVER`` on its next turn).
        False: the caller drops the entry itself, now. Why this is safe:
        :class:`~csgoflip_jobs.engine.celery_ext.qos.CarriedAcks`."""
        sent = self._sent
        if (
            self._poll_thread != threading.get_ident()
            or self.connection is None
            or not self.active_queues
            or (sent is not None and sent.kind == "WAIT")
        ):
            return False
        self.carried_acks.add(tag)
        return True

    def drop_carried_acks(self, client: Any = None, older_than_s: float = 0.0) -> None:
        """Drop now the unacked entries of the acks carried at least ``older_than_s``
        (the job keeper's safety net, and closing); on a Redis error they stay carried."""
        tags = self.carried_acks.take(older_than_s)
        if not tags:
            return
        try:
            with self.conn_or_acquire(client) as client_:
                pipe = client_.pipeline(transaction=False)
                pipe.zrem(self.unacked_index_key, *tags).hdel(self.unacked_key, *tags)
                pipe.execute()
        except BaseException:
            self.carried_acks.give_back(tags)
            raise

    def _drop_acks_or_forget(self) -> None:
        try:
            self.drop_carried_acks()
        except Exception as exc:  # e.g. the connection is gone
            # Left unacked, no longer heart-beaten: the sweep hands them out again,
            # and a finished job's redelivery is skipped unrun (see CarriedAcks).
            forgotten = self.carried_acks.take()
            log.warning("could not drop %d acked messages' entries (%r); the visibility"
                        " sweep will", len(forgotten), exc)  # fmt: skip

    def close(self) -> None:
        self._drop_acks_or_forget()
        super().close()

    def _deliver_arguments(
        self, queues: list[str], take_signal: bool, acks: list[str] | None = None
    ) -> tuple[list[str], list[Any]]:
        """The keys and arguments of ``DELIVER`` for these queues, in pop order, dropping
        the unacked entries of ``acks`` first."""
        lists = [self._q_for_pri(q, pri) for pri in self.priority_steps for q in queues]
        script_keys = [
            self.unacked_key,
            self.unacked_index_key,
            keys.DEAD_LETTERS_KEY,
            *[keys.ready_key(q) for q in queues],
            *[keys.paused_key(q) for q in queues],
            *[keys.active_key(q) for q in queues],
            *[keys.events_key(q) for q in queues],
            *lists,
        ]
        settings = get_settings()
        args = [
            len(queues),
            1 if take_signal else 0,
            time.time(),
            DEAD_LETTERS_KEEP,
            1 if self.start_on_delivery else 0,
            os.urandom(8).hex(),  # this delivery's run token, as JobTask's START sends
            settings.max_stalled_count,
            settings.events_max_len,
            *[0 if q in self._no_ack_queues else 1 for q in queues],
            *[keys.job_key_prefix(q) for q in queues],
            *(acks or ()),
        ]
        return script_keys, args

    def _handle_delivery(self, queues: list[str], reply: Any) -> bool:
        if not reply:
            self._more_expected = False
            raise Empty()
        self._more_expected = True
        position, item, reason, *started = reply
        queue = queues[int(position) - 1]
        self._queue_cycle.rotate(queue)
        if item is None:
            log.error(
                "dropped an unreadable message from %s (%s); kept in %s",
                queue,
                as_text(reason),
                keys.DEAD_LETTERS_KEY,
            )
            raise Empty()
        # DELIVER checked that this is JSON with properties and a delivery tag.
        payload = json.loads(as_text(item))
        tag = payload["properties"]["delivery_tag"]
        if queue not in self._no_ack_queues:
            self.recorded_tags.add(tag)
        if started and int(started[0]) >= 0:
            record_started_on_delivery(tag, int(started[0]))
        try:
            self.connection._deliver(payload, queue)
        except MalformedMessageError as exc:
            self._set_aside(payload, str(exc))
            raise Empty() from None
        return True

    def _set_aside(self, payload: dict[str, Any], reason: str) -> None:
        """Dead-letter a message kombu could not build, and drop its unacked entry."""
        tag = payload["properties"]["delivery_tag"]
        self.recorded_tags.discard(tag)
        log.error("dropped an unreadable message (%s); kept in %s", reason, keys.DEAD_LETTERS_KEY)
        with self.conn_or_acquire() as client:
            run_script(
                client,
                scripts.SET_ASIDE,
                [keys.DEAD_LETTERS_KEY, self.unacked_key, self.unacked_index_key],
                [json.dumps(payload), tag, reason, DEAD_LETTERS_KEEP],
            )


class Transport(kombu_redis.Transport):  # type: ignore[misc]
    """The Redis transport with :class:`Channel` (see :func:`install_transport`)."""

    Channel = Channel


def install_transport(transport_options: Mapping[str, Any]) -> None:
    """Make ``redis://`` and ``rediss://`` broker URLs use :class:`Transport`, and
    ``sentinel://`` ones its Sentinel form, in this process (idempotent); raise
    ConfigError for transport options it cannot honour.

    Why not Celery's ``broker_transport`` setting: kombu then names the connection
    after the class path (``Connection.as_uri()`` gives
    ``csgoflip_jobs.engine.celery_ext.transport:Transport://host:6379//``), and Flower
    picks its broker reader by that URL's scheme (``flower.utils.broker.Broker``), so
    its Broker page fails and the worker banner shows the class path. Registering
    under kombu's own scheme names keeps the URL ``redis://`` for every tool: Flower,
    ``celery inspect``, ``celery purge``, the banner. Other kombu users in the same
    process get this channel too; for anything but Celery task messages it is kombu's.
    """
    if transport_options.get("global_keyprefix"):
        # The delivery and enqueue scripts name their keys themselves; a prefix
        # would split a queue between prefixed and unprefixed keys.
        raise ConfigError(
            "broker_transport_options: global_keyprefix is not supported by the platform's "
            "transport; use a Redis database (REDIS_DB) of its own instead"
        )
    for scheme, transport in _TRANSPORTS.items():
        kombu_transport.TRANSPORT_ALIASES[scheme] = transport
        kombu_transport._transport_cache.pop(scheme, None)


_TRANSPORTS = {
    "redis": f"{__name__}:Transport",
    "rediss": f"{__name__}:Transport",
    "sentinel": "csgoflip_jobs.engine.celery_ext.sentinel:SentinelTransport",
}
"""The broker URL schemes the platform's transport takes over (``sentinel://``: REDIS_SENTINELS)."""

"""The QoS of the platform's Redis channel: late acks that survive a reconnect.

kombu records each delivered message in its ``unacked`` hash and, when a channel
closes, puts every message it held back on its queue. A job still running then
(Celery keeps running it when the broker connection drops) would be run a second
time by another worker; here its message stays unacked and heart-beaten instead,
and its ack lands on a fresh connection when it finishes; a requeue asked for then is
left to the visibility sweep.

An ack taken on the consuming thread rides on the channel's next ``DELIVER`` (see
:class:`CarriedAcks`) instead of costing a round trip of its own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery.worker import state as worker_state
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual as kombu_virtual

from csgoflip_jobs.helpers.connection import broker_client

log = logging.getLogger(__name__)


def running_delivery_tags() -> set[str]:
    """Delivery tags of the jobs this worker process is running right now.

    Empty outside a worker. Celery keeps running a job's pool process when the
    broker connection drops, and the job's request outlives the channel it came on.
    """
    for _ in range(5):
        try:
            return {r.message.delivery_tag for r in list(worker_state.active_requests)}
        except RuntimeError:  # the set changed while copied (another thread): again
            continue
    return set()


class CarriedAcks:
    """Delivery tags acked but whose unacked entries are still in Redis: the channel's
    next ``DELIVER`` drops them (thread-safe).

    Why carrying them is safe: an unacked entry left behind longer than it should
    (the worker dies first) only means the visibility sweep hands that message out
    again, and a redelivered job whose try already finished is skipped unrun (START
    sees it finished, moved on or gone). A job's own outcome drops its entry at once
    in FINISH; what rides here is Celery's ack after that, and the acks of deliveries
    that end without an outcome (skipped, deferred, or a message that is no job).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tags: list[tuple[str, float]] = []

    def __bool__(self) -> bool:
        return bool(self._tags)

    def add(self, tag: str) -> None:
        """Carry ``tag``'s entry removal on the next DELIVER."""
        with self._lock:
            self._tags.append((tag, time.monotonic()))

    def take(self, older_than_s: float = 0.0) -> list[str]:
        """Remove and return the tags carried at least ``older_than_s`` seconds."""
        cutoff = time.monotonic() - older_than_s
        with self._lock:
            taken = [tag for tag, at in self._tags if at <= cutoff]
            self._tags = [(tag, at) for tag, at in self._tags if at > cutoff]
        return taken

    def give_back(self, tags: list[str]) -> None:
        """Carry ``tags`` again (the DELIVER that took them failed)."""
        now = time.monotonic()
        with self._lock:
            self._tags[:0] = [(tag, now) for tag in tags]


class QoS(kombu_redis.QoS):  # type: ignore[misc]
    """kombu's QoS, minus the unacked write for messages ``DELIVER`` already recorded,
    and never putting back the message of a job that is still running."""

    def ack(self, delivery_tag: str) -> None:
        """kombu's ack; its Redis writes ride on the channel's next DELIVER when one is
        sure to follow at once (see :meth:`Channel.carry_ack`)."""
        if self.channel.carry_ack(delivery_tag):
            kombu_virtual.QoS.ack(self, delivery_tag)
            return
        super().ack(delivery_tag)

    def append(self, message: Any, delivery_tag: str) -> None:
        recorded = self.channel.recorded_tags
        if delivery_tag in recorded:
            recorded.discard(delivery_tag)
            kombu_virtual.QoS.append(self, message, delivery_tag)
        else:
            super().append(message, delivery_tag)

    @contextmanager
    def pipe_or_acquire(self, pipe: Any = None, client: Any = None) -> Iterator[Any]:
        """kombu's pipeline for acks and rejects, or, once the channel has closed
        under a running job (the broker connection dropped and Celery made a new
        one), a pipeline of a fresh client: the job's ack must still land."""
        if pipe is None and client is None and self.channel.connection is None:
            yield broker_client().pipeline()
            return
        with super().pipe_or_acquire(pipe, client) as acquired:
            yield acquired

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        """kombu's reject, except a requeue once the channel has closed under the job
        (a task that raised ``Reject(requeue=True)`` as the broker connection dropped):
        putting the message back needs the channel's routing tables, gone with it, and
        trying would stop the worker. Its entry stays unacked, no longer heart-beaten,
        and the visibility sweep puts it back on its queue: late, never lost."""
        if requeue and self.channel.connection is None:
            log.warning(
                "message %s: its channel closed before the requeue; the visibility sweep"
                " puts it back",
                delivery_tag,
            )
            kombu_virtual.QoS.ack(self, delivery_tag)  # forget it here, Redis keeps it
            return
        super().reject(delivery_tag, requeue=requeue)

    def restore_unacked(self, client: Any = None) -> Any:
        """Put the messages this channel holds back on their queues (kombu does this
        when the channel closes, e.g. after losing the broker connection), except
        those of jobs still running: another worker would run them a second time.
        Their entries stay unacked and heart-beaten while they run, and the
        visibility sweep puts them back should this worker die."""
        running = running_delivery_tags()
        waiting = [tag for tag in self._delivered if tag not in running]
        try:
            with self.channel.conn_or_acquire(client) as client_:
                for tag in waiting:
                    self.restore_by_tag(tag, client=client_)
        except Exception as exc:  # e.g. the connection is already gone
            # Nothing is lost: the entries stay unacked, and with no heartbeat the
            # visibility sweep of any worker puts them back on their queues.
            log.warning(
                "could not put %d held message(s) back now (%r); the visibility sweep will",
                len(waiting),
                exc,
            )
        self._delivered.clear()

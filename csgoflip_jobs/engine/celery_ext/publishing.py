"""The publishing half of the platform's Redis channel: task messages stored by the
``ENQUEUE`` script (record, dedupe, delay) instead of kombu's LPUSH, a ready signal
beside every other message and every requeue, and ``celery purge`` as ``drain``.

:class:`~csgoflip_jobs.engine.celery_ext.transport.Channel` adds consuming to it.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import current_task
from kombu.transport import redis as kombu_redis

from csgoflip_jobs import keys
from csgoflip_jobs.engine.enqueue import current_capture, enqueue_call
from csgoflip_jobs.engine.queue_base import Limits
from csgoflip_jobs.engine.queue_changes import drain
from csgoflip_jobs.helpers.redis_calls import one, run
from csgoflip_jobs.settings import get_settings

log = logging.getLogger(__name__)


class PublishingChannel(kombu_redis.Channel):  # type: ignore[misc]
    """kombu's Redis channel publishing through ``ENQUEUE`` (see the module docstring)."""

    def _do_restore_message(
        self, payload: Any, exchange: str, routing_key: str, pipe: Any, leftmost: bool = False
    ) -> None:
        super()._do_restore_message(payload, exchange, routing_key, pipe, leftmost)
        # Same transaction as the requeue: wake an idle worker for it.
        for queue in self._lookup(exchange, routing_key):
            pipe.lpush(keys.ready_key(queue), "1")

    def _purge(self, queue: str) -> int:
        """Purge as ``JobQueue.drain`` does, so the waiting jobs' records go with their
        messages (kombu's purge would leave them waiting for ever); returns the number
        of messages taken off, as kombu's does."""
        lists = [self._q_for_pri(queue, level) for level in self.priority_steps]
        limits = Limits.from_settings(get_settings())
        with self.conn_or_acquire() as client:
            _jobs, messages = run(client, drain(queue, lists, limits, delayed=False))
        return messages

    def _put(self, queue: str, message: dict[str, Any], **kwargs: Any) -> None:
        headers = message.get("headers") or {}
        if "task" not in headers or "id" not in headers:
            batch = kwargs.get("_publish_batch")
            super()._put(queue, message, **kwargs)
            if batch is not None:
                batch.add("lpush", keys.ready_key(queue), "1")
            else:
                with self.conn_or_acquire() as client:
                    client.lpush(keys.ready_key(queue), "1")
            return
        capture = current_capture()
        if capture is not None:
            capture.task = (queue, message)
            return
        level = self._get_message_priority(message, reverse=False)
        call = enqueue_call(
            queue,
            message,
            kombu_redis.dumps(message),
            self._q_for_pri(queue, level),
            get_settings().events_max_len,
            sent_by_itself=_is_running_task(headers["id"]),
        )
        with self.conn_or_acquire() as client:
            if not run(client, one(call, int)):
                log.info("job %s is waiting, delayed or running; not enqueued again",
                         headers["id"])  # fmt: skip

    def _put_fanout(
        self, exchange: str, message: dict[str, Any], routing_key: str, **kwargs: Any
    ) -> None:
        capture = current_capture()
        if capture is None:
            super()._put_fanout(exchange, message, routing_key, **kwargs)
            return
        capture.event = (self._get_publish_topics(exchange, routing_key), message)


def _is_running_task(task_id: str) -> bool:
    """True when this process is running task ``task_id`` (as its own retry or replace
    sends it again)."""
    request = getattr(current_task, "request", None)
    return request is not None and getattr(request, "id", None) == task_id

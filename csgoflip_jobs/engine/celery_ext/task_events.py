"""A worker boot step sending Celery's task events in batches.

A worker sends three task events per job (received, started, succeeded), each its
own PUBLISH. With the event loop, Celery already buffers them and sends what has
piled up as one ``task-multi`` message, but on the loop's very next turn, which at
a job every few milliseconds is about one event each. :class:`BatchedTaskEvents`
sends a buffer TASK_EVENTS_FLUSH_S after its first event instead (Celery still
sends at once when 24 have piled up), so a busy worker sends a few messages per
hundred jobs. Flower still receives every event, in order, at most that much later:
Celery's event receiver takes the batch apart. Events are for watching, never for
the job's state (which Redis holds), so a batch lost with a killed worker loses no
job.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import bootsteps

TASK_EVENTS_FLUSH_S = 0.05
"""Longest a worker holds a task event back to send it with others."""

log = logging.getLogger(__name__)


class BatchedTaskEvents(bootsteps.StartStopStep):  # type: ignore[misc]
    """Consumer boot step: task events sent at most TASK_EVENTS_FLUSH_S after they
    happen, in batches; whatever is held is sent when the consumer stops."""

    requires = ("celery.worker.consumer.events:Events",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._flush_due = False

    def start(self, parent: Any) -> None:
        """Have the consumer's event dispatcher send its buffer on a timer."""
        dispatcher, hub = parent.event_dispatcher, parent.hub
        if dispatcher is None or hub is None or not dispatcher.buffer_group:
            return  # no event loop: Celery sends each event at once
        self._flush_due = False

        def flush() -> None:
            self._flush_due = False
            if parent.event_dispatcher is dispatcher:  # not replaced by a reconnect
                dispatcher.flush()

        def flush_soon() -> None:
            if not self._flush_due:
                self._flush_due = True
                hub.call_later(TASK_EVENTS_FLUSH_S, flush)

        dispatcher.on_send_buffered = flush_soon

    def stop(self, parent: Any) -> None:
        """Send what is held (the consumer is stopping or reconnecting)."""
        dispatcher = parent.event_dispatcher
        if dispatcher is not None:
            try:
                dispatcher.flush()
            except Exception as exc:  # the broker connection may be gone
                log.warning("could not send the held task events: %r", exc)

    shutdown = stop

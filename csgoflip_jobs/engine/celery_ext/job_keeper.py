"""What every worker runs beside Celery's consumer.

* :class:`JobKeeper` (a consumer boot step) first moves any job records an earlier
  version left under legacy keys (:mod:`csgoflip_jobs.engine.upgrade`), then runs one
  thread that
  - moves due delayed jobs and retries onto their queues (``PROMOTE`` script),
    waking at once when a new delayed job arrives and otherwise at the next
    due time;
  - refreshes the unacked-index score of every message this worker holds, so
    kombu's visibility-timeout sweep redelivers only the jobs of workers that
    died, never a long job that is still running;
  - drops the unacked entries of acks the consumer carried for its next DELIVER
    when none followed within CARRIED_ACK_MAX_AGE_S (a safety net: it normally
    follows at once).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis
from celery import bootsteps
from celery.concurrency.solo import TaskPool as SoloPool

from csgoflip_jobs import keys
from csgoflip_jobs.engine import scripts
from csgoflip_jobs.engine.celery_ext.qos import running_delivery_tags
from csgoflip_jobs.engine.upgrade import ensure_current_layout
from csgoflip_jobs.helpers.connection import make_client
from csgoflip_jobs.settings import get_settings

HEARTBEAT_INTERVAL_S = 5.0
"""How often a worker refreshes the unacked-index score of the jobs it holds
(or a third of the visibility timeout when that is shorter)."""

SCHEDULER_MAX_SLEEP_S = 1.0
"""Longest a worker's delayed-job scheduler sleeps between checks."""

CARRIED_ACK_MAX_AGE_S = 1.0
"""Longest an ack waits for the consumer's next DELIVER before the keeper sends it."""

SCHEDULER_BATCH = 500
"""Most delayed jobs moved to their queue by one scheduler step."""

log = logging.getLogger(__name__)


class JobKeeperThread(threading.Thread):
    """Promotes due delayed jobs and heart-beats held messages until stopped."""

    def __init__(
        self,
        client: redis.Redis,
        queues: list[str],
        qos: Any,
        visibility_timeout_s: float,
        command_timeout_s: float,
    ) -> None:
        super().__init__(name="csgoflip-job-keeper", daemon=True)
        self._client = client
        # Its blocking wait must end well inside the client's socket timeout.
        self._max_sleep_s = min(SCHEDULER_MAX_SLEEP_S, command_timeout_s / 2)
        self._queues = queues
        self._qos = qos
        # Three heartbeats fit in one visibility timeout, so one late beat is harmless.
        self._heartbeat_s = min(HEARTBEAT_INTERVAL_S, visibility_timeout_s / 3)
        self._events_max_len = get_settings().events_max_len
        self._stopping = threading.Event()
        self._next_heartbeat = 0.0

    def stop(self) -> None:
        """Ask the thread to finish its current step and exit."""
        self._stopping.set()

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._step()
            except redis.RedisError as exc:
                # Redis restarts are expected; the next step retries.
                log.warning("job keeper: %s; retrying in 1 s", exc)
                self._stopping.wait(1.0)

    def _step(self) -> None:
        wait_s = self._promote_due()
        self._heartbeat_if_due()
        self._qos.channel.drop_carried_acks(self._client, older_than_s=CARRIED_ACK_MAX_AGE_S)
        wait_s = min(wait_s, max(0.0, self._next_heartbeat - time.monotonic()))
        if wait_s > 0:
            # Blocks until a new delayed job is announced or the wait is over.
            self._client.blpop([keys.wake_key(q) for q in self._queues], timeout=max(wait_s, 0.01))

    def _promote_due(self) -> float:
        """Move every due job; return seconds until the next one is due (capped)."""
        wait_s = self._max_sleep_s
        for queue in self._queues:
            while True:
                moved, next_in_ms = scripts.PROMOTE(
                    keys=[
                        keys.delayed_key(queue),
                        keys.wake_key(queue),
                        keys.ready_key(queue),
                        keys.events_key(queue),
                    ],
                    args=[keys.job_key_prefix(queue), SCHEDULER_BATCH, self._events_max_len],
                    client=self._client,
                )
                if moved:
                    log.debug("moved %d due jobs onto %s", moved, queue)
                if moved < SCHEDULER_BATCH:
                    break
            if next_in_ms >= 0:
                wait_s = min(wait_s, next_in_ms / 1000)
        return wait_s

    def _heartbeat_if_due(self) -> None:
        now = time.monotonic()
        if now < self._next_heartbeat:
            return
        self._next_heartbeat = now + self._heartbeat_s
        # list() copies the dict in one step under the GIL while kombu mutates it.
        # Running jobs count too: after a reconnect they belong to no channel.
        tags = {*list(self._qos._delivered), *running_delivery_tags()}
        if tags:
            # XX: never resurrect an entry that was acked meanwhile.
            self._client.zadd(
                keys.KOMBU_UNACKED_INDEX_KEY, dict.fromkeys(tags, time.time()), xx=True
            )


def runs_each_delivery_at_once(consumer: Any) -> bool:
    """True when the consumer runs every message it takes at once, in its own process,
    within the delivery's call: the solo pool, and no task rate-limited (Celery would
    hold such a message back). Why that makes starting the try in DELIVER safe: a
    crash between taking the message and running it is then a crash while running it
    (its worker died holding it: a stall, as it is counted), so no new window opens;
    in a pool whose processes take messages from a buffer it would count waiting
    messages as running (and keep running those of a queue paused meanwhile)."""
    if not isinstance(consumer.pool, SoloPool):
        return False
    return not any(getattr(task, "rate_limit", None) for task in consumer.app.tasks.values())


class JobKeeper(bootsteps.StartStopStep):  # type: ignore[misc]
    """Consumer boot step running :class:`JobKeeperThread` while the consumer runs."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._thread: JobKeeperThread | None = None

    def start(self, parent: Any) -> None:
        """Start the thread for the queues this worker consumes, and let a solo worker
        start each try in the DELIVER that takes its message."""
        parent.task_consumer.channel.start_on_delivery = runs_each_delivery_at_once(parent)
        queues = sorted(q.name for q in parent.task_consumer.queues)
        client = make_client(parent.app.conf.broker_url)
        # Before the first message: a job still under a legacy key would be skipped as
        # unknown when delivered, and dropped when due.
        ensure_current_layout(client)
        settings = get_settings()
        self._thread = JobKeeperThread(
            client,
            queues,
            parent.task_consumer.channel.qos,
            settings.visibility_timeout_s,
            settings.redis_command_timeout_s,
        )
        self._thread.start()

    def stop(self, parent: Any) -> None:
        """Stop the thread; a restarted consumer starts a new one."""
        if self._thread is not None:
            self._thread.stop()
            self._thread.join(timeout=5)
            self._thread = None

    shutdown = stop

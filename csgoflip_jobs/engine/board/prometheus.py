"""The platform's numbers for Prometheus, beside Flower's own on ``/metrics``.

Per queue, read from Redis (the numbers of ``get_job_counts`` and ``get_metrics``):

* ``csgoflip_queue_jobs{queue, state}``: gauge of the jobs in each state (waiting,
  delayed, active, paused, completed, failed);
* ``csgoflip_queue_paused{queue}``: 1 while the queue is paused;
* ``csgoflip_queue_jobs_completed_total{queue}`` and ``..._failed_total{queue}``:
  counters of the jobs that ever finished so (they only grow, unless the queue is
  obliterated, which Prometheus reads as a counter reset);
* ``csgoflip_queue_redis_up``: 0 when the last read failed (the series above are then
  left out rather than reported stale).

:meth:`QueueNumbers.refresh` reads Redis (blocking; Flower runs it in its executor
before each scrape) and :meth:`QueueNumbers.collect` only reports the last reading, so
a scrape never waits on Redis inside Flower's event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from celery import Celery
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from csgoflip_jobs.engine.board.pages import COUNT_STATES
from csgoflip_jobs.engine.job_queue import JobQueue, queue_names
from csgoflip_jobs.errors import CsgoflipJobsError

log = logging.getLogger(__name__)

_Numbers = tuple[dict[str, int], bool, int, int]
"""One queue's counts, paused, completed total and failed total."""


class QueueNumbers(Collector):
    """A Prometheus collector of every queue ``app`` defines."""

    def __init__(self, app: Celery) -> None:
        self._app = app
        self._reading: tuple[bool, dict[str, _Numbers]] | None = None
        """Whether Redis answered, and each queue's numbers, as last read."""

    def refresh(self) -> None:
        """Read every queue's numbers now; on a broker error keep none (redis_up 0)."""
        try:
            self._reading = (True, {name: self._read(name) for name in queue_names(self._app)})
        except CsgoflipJobsError as exc:
            log.warning("Prometheus: cannot read the queues from Redis: %s", exc)
            self._reading = (False, {})

    def _read(self, name: str) -> _Numbers:
        queue = JobQueue(name, app=self._app)
        completed = queue.get_metrics("completed", 0, 0)["total"]
        failed = queue.get_metrics("failed", 0, 0)["total"]
        return queue.get_job_counts(), queue.is_paused(), completed, failed

    def collect(self) -> Iterator[Metric]:
        """The last reading; nothing before the first :meth:`refresh`."""
        if self._reading is None:
            return
        up, reading = self._reading
        yield GaugeMetricFamily(
            "csgoflip_queue_redis_up", "1 when the queues were read from Redis", value=int(up)
        )
        jobs = GaugeMetricFamily(
            "csgoflip_queue_jobs", "Jobs in each state, read from Redis", labels=["queue", "state"]
        )
        paused = GaugeMetricFamily("csgoflip_queue_paused", "1 while paused", labels=["queue"])
        completed = CounterMetricFamily(
            "csgoflip_queue_jobs_completed", "Jobs completed in all", labels=["queue"]
        )
        failed = CounterMetricFamily(
            "csgoflip_queue_jobs_failed", "Jobs failed in all", labels=["queue"]
        )
        for name, (counts, is_paused, completed_total, failed_total) in reading.items():
            for state in COUNT_STATES:
                jobs.add_metric([name, state], counts.get(state, 0))
            paused.add_metric([name], 1 if is_paused else 0)
            completed.add_metric([name], completed_total)
            failed.add_metric([name], failed_total)
        yield from (jobs, paused, completed, failed)

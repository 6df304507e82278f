"""The base class of every task: BullMQ tries, backoff and unrecoverable errors.

Celery's own ``retry(countdown=...)`` keeps the waiting message in a worker's
memory (lost to kill -9, duplicated past the visibility timeout). Here a failed
try is re-published through the broker's delayed set instead, so the wait is
durable, and the job keeps its id across tries, as in BullMQ.
"""

from __future__ import annotations

import inspect
import logging
import time
from functools import cached_property
from typing import Any

import redis
from celery import Task
from celery.exceptions import Ignore, Reject, Retry

from csgoflip_jobs import keys
from csgoflip_jobs.engine import scripts
from csgoflip_jobs.engine.enqueue import JOB_HEADER
from csgoflip_jobs.engine.errors import UnrecoverableError
from csgoflip_jobs.engine.job_try import JobTry
from csgoflip_jobs.helpers.connection import broker_client

HAND_BACK_PAUSE_S = 1.0
"""Pause before a worker hands back a job it could not mark started (Redis failing)."""

log = logging.getLogger(__name__)


_FITTING_NAMES_KEPT = 1000
"""Most sets of data names remembered per task as fitting its signature."""


class JobTask(Task):  # type: ignore[misc]
    """Celery task with BullMQ semantics; set as the app's ``task_cls``."""

    @property
    def is_final_try(self) -> bool:
        """True while running the job's last allowed try."""
        job = JobTry.from_request(self.request)
        return job.attempt >= job.attempts

    @cached_property
    def _run_signature(self) -> inspect.Signature:
        return inspect.signature(self.run)

    @cached_property
    def _fitting_names(self) -> set[frozenset[str]]:
        return set()

    def check_data(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Raise TypeError when the task cannot be called with this data."""
        if args:
            self._run_signature.bind(*args, **kwargs)
            return
        # Whether keyword data fits depends only on its names: remember the good sets.
        names = frozenset(kwargs)
        if names not in self._fitting_names:
            self._run_signature.bind(**kwargs)
            if len(self._fitting_names) < _FITTING_NAMES_KEPT:
                self._fitting_names.add(names)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.request.called_directly:
            return self.run(*args, **kwargs)
        try:
            self.check_data(args, kwargs)
        except TypeError as exc:
            # Data of the wrong shape can never succeed on a later try.
            raise UnrecoverableError(f"bad job data for {self.name}: {exc}") from None
        job = JobTry.from_request(self.request)
        try:
            started = self._mark_started(job)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            # Redis failed before the job ran (down, restarting, loading its data):
            # that is no try of the job. Hand the delivery back; should Redis not
            # take it back either, the visibility sweep brings it back later.
            log.warning(
                "job %s try %d could not be marked started (%s); handed back",
                job.job_id,
                job.attempt,
                exc,
            )
            time.sleep(HAND_BACK_PAUSE_S)  # no tight loop against a failing Redis
            raise Reject(exc, requeue=True) from exc
        if not started:
            log.warning(
                "job %s try %d was delivered again after it finished, moved on or was "
                "removed; skipped",
                job.job_id,
                job.attempt,
            )
            raise Ignore()
        try:
            return self.run(*args, **kwargs)
        except (UnrecoverableError, Ignore, Reject, Retry):
            raise
        except Exception as exc:
            if job.attempt >= job.attempts:
                raise
            delay_ms = job.backoff.delay_for(job.attempt)
            self._schedule_next_try(job, delay_ms, args, kwargs)
            raise Retry(exc=exc, when=delay_ms / 1000) from exc

    def _mark_started(self, job: JobTry) -> bool:
        started = scripts.START(
            keys=[keys.job_key(job.job_id), keys.active_key(job.queue)],
            args=[job.job_id, job.attempt, self.name, job.queue],
            client=broker_client(),
        )
        return bool(started)

    def defer(self, delay_ms: int) -> None:
        """Put this job back for ``delay_ms`` without using up a try (e.g. over a rate limit).

        Raises Ignore: the current delivery ends without a result; the job runs
        again from Redis's delayed set, as the same try.
        """
        job = JobTry.from_request(self.request)
        self._republish(job, job.attempt, delay_ms, self.request.args, self.request.kwargs)
        log.info("job %s try %d deferred by %d ms", job.job_id, job.attempt, delay_ms)
        raise Ignore()

    def _schedule_next_try(self, job: JobTry, delay_ms: int, args: Any, kwargs: Any) -> None:
        self._republish(job, job.attempt + 1, delay_ms, args, kwargs)
        log.info(
            "job %s try %d/%d failed; next try in %d ms",
            job.job_id,
            job.attempt,
            job.attempts,
            delay_ms,
        )

    def _republish(self, job: JobTry, attempt: int, delay_ms: int, args: Any, kwargs: Any) -> None:
        header = {**job.header, "attempt": attempt, "delay": delay_ms, "retry": True}
        self.app.send_task(
            self.name,
            args=args,
            kwargs=kwargs,
            task_id=job.job_id,
            queue=job.queue,
            priority=job.priority,
            headers={JOB_HEADER: header},
        )

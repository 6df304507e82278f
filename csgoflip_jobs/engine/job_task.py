"""The base class of every task: BullMQ's tries, backoff, stall limit, progress and logs.

Invariants of a job run by :class:`JobTask`:

* a try runs only after START marked it active in Redis; a delivery that is stale
  (the job finished, was removed, or moved on to a later try) is skipped, and one
  taken while the queue is paused is handed back unrun;
* a failed try is followed by the next one only while ``attempts`` allows (and, for
  an exception, only on a queue with BullMQ's defaults or for a job given its
  attempts: :meth:`JobTry.from_request`); the wait (backoff, ``self.retry``
  countdown, ``defer``) is kept in Redis's delayed set, never in a worker's memory,
  so it survives every worker being killed;
* the next try is the same Celery signature (links, errbacks, chord, stamps, custom
  headers, ``ignore_result``), so errbacks run once, after the last try;
* a job whose worker died while running it runs again at most MAX_STALLED_COUNT
  times, then fails ("job stalled more than allowable limit") without running.
"""

from __future__ import annotations

import inspect
import logging
import math
import os
import time
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import redis
from celery import Signature, Task
from celery.exceptions import Ignore, Reject, Retry

from csgoflip_jobs import keys
from csgoflip_jobs.engine import scripts, tracing
from csgoflip_jobs.engine.enqueue import JOB_HEADER
from csgoflip_jobs.engine.errors import JobStalledError, UnrecoverableError
from csgoflip_jobs.engine.job_try import JobTry, check_data, take_started_on_delivery
from csgoflip_jobs.engine.options import MAX_DELAY_MS, require_delay_ms
from csgoflip_jobs.helpers.arguments import json_within
from csgoflip_jobs.helpers.connection import broker_client
from csgoflip_jobs.settings import get_settings

HAND_BACK_PAUSE_S = 1.0
"""Pause before a worker hands back a job it could not mark started (Redis failing)."""

LOG_LINE_MAX_CHARS = 10_000
"""Longest line ``self.log`` keeps (the rest is cut)."""

STALLED_REASON = "job stalled more than allowable limit"

log = logging.getLogger(__name__)

_RUN, _STALE, _STALLED_OUT, _PAUSED = 1, 0, 2, 3


class JobTask(Task):  # type: ignore[misc]
    """Celery task with BullMQ semantics; set as the app's ``task_cls``."""

    @property
    def job_id(self) -> str:
        """The running job's id within its queue (``self.request.id`` is Celery's task
        id: the same, unless the job was added with its own id)."""
        return self._job().job_id

    @property
    def is_final_try(self) -> bool:
        """True while running the job's last allowed try: should this try raise, the
        job fails (``self.retry`` may still ask for another on a Celery-style queue)."""
        job = self._job()
        return not job.retries_on_error or job.attempt >= job.attempts

    @cached_property
    def _bullmq_queues(self) -> frozenset[str]:
        return frozenset(self.app.conf.get("bullmq_queues") or ())

    def _job(self) -> JobTry:
        return JobTry.from_request(self.request, self._bullmq_queues)

    @property
    def _outside_a_job(self) -> bool:
        """Called as a function or by ``apply()``: no job record, no message, no tries."""
        request = self.request
        return bool(request.called_directly or request.is_eager)

    @cached_property
    def _run_signature(self) -> inspect.Signature:
        return inspect.signature(self.run)

    @cached_property
    def _fitting_names(self) -> set[frozenset[str]]:
        return set()

    def check_data(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Raise TypeError when the task cannot be called with this data."""
        check_data(self._run_signature, self._fitting_names, args, kwargs)

    def on_stall_limit(self, *args: Any, **kwargs: Any) -> None:
        """Called with the job's data when it fails for stalling too often, before the
        failure is stored; a task whose work may have half happened (a payout) records
        that here. Does nothing by default."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._outside_a_job:
            return self.run(*args, **kwargs)
        job = self._job()
        try:
            self.check_data(args, kwargs)
        except TypeError as exc:
            if not job.retries_on_error:
                raise  # fails at once anyway, with Celery's own error
            # Data of the wrong shape can never succeed on a later try.
            raise UnrecoverableError(f"bad job data for {self.name}: {exc}") from None
        tracing.tag_current_span(job.job_id, job.queue, self.name, job.attempt)
        self._start(job, args, kwargs)
        try:
            return self.run(*args, **kwargs)
        except (UnrecoverableError, Ignore, Reject, Retry):
            raise
        except Exception as exc:
            if (
                not job.retries_on_error
                or job.attempt >= job.attempts
                or getattr(self.request, "no_more_tries", False)
            ):
                raise
            delay_ms = job.backoff.delay_for(job.attempt)
            self._schedule_next_try(job, delay_ms, args, kwargs)
            raise Retry(exc=exc, when=delay_ms / 1000) from exc

    def _start(self, job: JobTry, args: Any, kwargs: Any) -> None:
        """Mark the try started, or end this delivery (skip, hand back or fail it)."""
        try:
            started = take_started_on_delivery(job.tag)
            if started is None:
                started = self._mark_started(job)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            # Redis failed before the job ran (down, restarting, loading its data):
            # that is no try of the job. Hand the delivery back; should Redis not
            # take it back either, the visibility sweep brings it back later.
            log.warning("job %s try %d could not be marked started (%s); handed back",
                        job.job_id, job.attempt, exc)  # fmt: skip
            time.sleep(HAND_BACK_PAUSE_S)  # no tight loop against a failing Redis
            raise Reject(exc, requeue=True) from exc
        if started == _STALE:
            log.warning("job %s try %d was delivered again after it finished, moved on or "
                        "was removed; skipped", job.job_id, job.attempt)  # fmt: skip
            raise Ignore()
        if started == _PAUSED:
            log.info("job %s: queue %s is paused; handed back", job.job_id, job.queue)
            raise Reject("queue paused", requeue=True)
        if started == _STALLED_OUT:
            log.error("job %s: %s; failed without running", job.job_id, STALLED_REASON)
            tracing.span_event("job.stalled_out", attempt=job.attempt)
            self.on_stall_limit(*args, **kwargs)
            raise JobStalledError(STALLED_REASON)

    def _mark_started(self, job: JobTry) -> int:
        settings = get_settings()
        started = scripts.START(
            keys=[
                keys.job_key(job.queue, job.job_id),
                keys.active_key(job.queue),
                keys.events_key(job.queue),
                keys.paused_key(job.queue),
            ],
            args=[
                job.job_id,
                job.attempt,
                self.name,
                job.queue,
                job.tag,
                os.urandom(8).hex(),  # this delivery's run: a START sent twice is one
                settings.max_stalled_count,
                settings.events_max_len,
            ],
            client=broker_client(),
        )
        return int(started)

    def update_progress(self, value: Any) -> None:
        """Report the running job's progress (a number or a JSON object): stored as
        ``Job.progress`` and sent as a ``progress`` event."""
        if isinstance(value, bool) or not isinstance(value, int | float | dict):
            raise ValueError(f"progress must be a number or a JSON object, not {value!r}")
        limit = get_settings().progress_max_bytes
        self._progress("progress", json_within("progress", value, limit, "PROGRESS_MAX_BYTES"))

    def log(self, text: str) -> int:
        """Append a line to the running job's logs (``JobQueue.get_job_logs``); the
        newest lines are kept, at most JOB_LOGS_MAX of them and JOB_LOG_MAX_BYTES in all,
        and go when the job goes. Returns how many lines the job has."""
        if not isinstance(text, str):
            raise ValueError(f"a log line must be a string, not {text!r}")
        return self._progress("log", text[:LOG_LINE_MAX_CHARS])

    def _progress(self, kind: str, value: str) -> int:
        if self._outside_a_job:
            return 0  # no job to record it on
        job = self._job()
        settings = get_settings()
        return int(
            scripts.PROGRESS(
                keys=[keys.job_key(job.queue, job.job_id), keys.events_key(job.queue),
                      keys.job_logs_key(job.queue, job.job_id)],
                args=[kind, job.job_id, value, settings.events_max_len, settings.job_logs_max,
                      settings.job_log_max_bytes],
                client=broker_client(),
            )
        )  # fmt: skip

    def retry(
        self,
        args: Any = None,
        kwargs: Any = None,
        exc: BaseException | None = None,
        throw: bool = True,
        eta: datetime | None = None,
        countdown: float | None = None,
        max_retries: int | None = None,
        **options: Any,
    ) -> Retry:
        """Celery's ``self.retry`` (also behind ``autoretry_for``), durable and counted
        as a failed try of the job.

        The next try waits in Redis's delayed set for ``countdown`` seconds (or until
        ``eta``; the task's ``default_retry_delay`` when neither is given). It runs
        while both limits allow it: the job's ``attempts`` (tries in all) and Celery's
        ``max_retries`` (retries after the first try). Past either, the job fails with
        ``exc`` (or Celery's MaxRetriesExceededError), without a further try.
        """
        request = self.request
        if self._outside_a_job:
            return super().retry(args, kwargs, exc, throw, eta, countdown, max_retries, **options)
        job = self._job()
        limit = self.max_retries if max_retries is None else max_retries
        if job.attempt >= job.attempts or (limit is not None and job.attempt - 1 >= limit):
            request.no_more_tries = True
            if exc is not None:
                raise exc
            raise self.MaxRetriesExceededError(
                f"job {job.job_id} of {self.name}: no tries left ({job.attempt} of "
                f"{job.attempts}, max_retries {limit})"
            )
        delay_ms = _retry_delay_ms(eta, countdown, self.default_retry_delay)
        extra_headers = options.pop("headers", None)
        headers = self._next_try_headers(job, job.attempt + 1, delay_ms, extra_headers)
        tracing.span_event("job.retry_scheduled", attempt=job.attempt + 1, delay_ms=delay_ms)
        try:
            # Celery builds the next try's message (rebinding new args or kwargs onto
            # the first ones, as it does on stock Celery); the wait rides in the
            # platform's header (durable), not as Celery's in-memory countdown.
            retry = super().retry(
                args, kwargs, exc, throw=False, countdown=0, max_retries=max_retries,
                headers=headers, **options,
            )  # fmt: skip
        except Reject as refused:
            # The next try could not be stored (Celery would drop the job): hand this
            # delivery back, so the try runs again rather than the job being lost.
            raise Reject(refused.reason, requeue=True) from refused
        log.info("job %s try %d/%d asked to retry; next try in %d ms",
                 job.job_id, job.attempt, job.attempts, delay_ms)  # fmt: skip
        retry.when = delay_ms / 1000
        if throw:
            raise retry
        return retry

    def on_replace(self, sig: Signature) -> Any:
        """Celery's ``self.replace``: the replacement takes this job's task id, so this
        run's record is let go first; the replacement (or, for a chain, its last task
        when it is sent) is stored under that id as a new job."""
        if not self._outside_a_job:
            job = self._job()
            with broker_client().pipeline(transaction=True) as pipe:
                pipe.srem(keys.active_key(job.queue), job.job_id)
                pipe.delete(keys.job_key(job.queue, job.job_id),
                            keys.job_logs_key(job.queue, job.job_id))  # fmt: skip
                pipe.execute()
        return super().on_replace(sig)

    def defer(self, delay_ms: int) -> None:
        """Put this job back for ``delay_ms`` without using up a try (e.g. over a rate limit).

        Raises Ignore: the current delivery ends without a result; the job runs
        again from Redis's delayed set, as the same try. JobOptionsError when
        ``delay_ms`` is not 0..MAX_DELAY_MS.
        """
        delay_ms = require_delay_ms("delay_ms", delay_ms)
        job = self._job()
        tracing.span_event("job.deferred", attempt=job.attempt, delay_ms=delay_ms)
        self._republish(job, job.attempt, delay_ms, self.request.args, self.request.kwargs)
        log.info("job %s try %d deferred by %d ms", job.job_id, job.attempt, delay_ms)
        raise Ignore()

    def _schedule_next_try(self, job: JobTry, delay_ms: int, args: Any, kwargs: Any) -> None:
        tracing.span_event("job.retry_scheduled", attempt=job.attempt + 1, delay_ms=delay_ms)
        self._republish(job, job.attempt + 1, delay_ms, args, kwargs)
        log.info("job %s try %d/%d failed; next try in %d ms",
                 job.job_id, job.attempt, job.attempts, delay_ms)  # fmt: skip

    def _republish(self, job: JobTry, attempt: int, delay_ms: int, args: Any, kwargs: Any) -> None:
        request = self.request
        headers = self._next_try_headers(job, attempt, delay_ms)
        # The same signature as the try being run, so links, errbacks, chord, stamps,
        # custom headers and ignore_result all reach the next try.
        self.signature_from_request(
            request, args, kwargs, retries=attempt - 1, headers=headers
        ).apply_async()

    def _next_try_headers(
        self, job: JobTry, attempt: int, delay_ms: int, extra: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The message headers of try ``attempt``: the running one's custom headers,
        ``extra``, and the platform's header saying which try it is and when it is due."""
        header = {**job.header, "attempt": attempt, "delay": delay_ms, "retry": True}
        return {**(self.request.headers or {}), **(extra or {}), JOB_HEADER: header}


def _retry_delay_ms(eta: datetime | None, countdown: float | None, default_s: Any) -> int:
    """The wait before the next try, in 0..MAX_DELAY_MS (a countdown of a century, or
    infinity, waits the longest delay the platform keeps)."""
    if countdown is not None:
        seconds = float(countdown)
    elif eta is not None:
        due = eta if eta.tzinfo else eta.replace(tzinfo=UTC)
        seconds = (due - datetime.now(UTC)).total_seconds()
    else:
        seconds = float(default_s or 0)
    if math.isnan(seconds):
        raise ValueError("a retry's countdown must be a number of seconds, not NaN")
    return int(min(max(seconds * 1000, 0), MAX_DELAY_MS))

"""Celery's Redis result backend with BullMQ's retention.

When a job finishes, one Lua script (``FINISH``) stores Celery's result, records the
outcome on the job, adds it to the queue's completed or failed set, and trims that
set to the newest N (100 completed / 1000 failed by default, or the job's
``remove_on_complete`` / ``remove_on_fail``), deleting the records and results of
what it trims, and acks the delivery that ran the try. Kept results never expire,
and memory stays bounded however many jobs run.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from celery import states
from celery.backends.redis import RedisBackend
from kombu.utils.encoding import bytes_to_str

from csgoflip_jobs import keys
from csgoflip_jobs.engine import scripts
from csgoflip_jobs.engine.job_try import JobTry
from csgoflip_jobs.engine.options import DEFAULT_KEEP_COMPLETED, DEFAULT_KEEP_FAILED
from csgoflip_jobs.helpers.connection import broker_client
from csgoflip_jobs.settings import get_settings

STACKTRACE_MAX_CHARS = 4000
"""Longest traceback kept on a failed job, so 1000 failed jobs stay small."""

log = logging.getLogger(__name__)

_OUTCOMES = {
    states.SUCCESS: "completed",
    states.FAILURE: "failed",
    states.REVOKED: "failed",
    states.RETRY: "retry",
}


class RetainingRedisBackend(RedisBackend):  # type: ignore[misc]
    """Redis result backend that keeps the newest N finished jobs per queue."""

    def on_task_call(self, producer: Any, task_id: str) -> None:
        """Do not subscribe to every sent job's result; ``AsyncResult.get`` still works.

        Celery subscribes the publishing process to each task's result channel,
        which costs a command per enqueue and grows without bound in a web app
        that never waits for results. ``get()`` subscribes on demand and reads
        the stored result first, so nothing is missed.
        """

    def _store_result(
        self,
        task_id: str,
        result: Any,
        state: str,
        traceback: str | None = None,
        request: Any = None,
        **kwargs: Any,
    ) -> Any:
        outcome = _OUTCOMES.get(state)
        if outcome is None:
            return super()._store_result(task_id, result, state, traceback, request, **kwargs)
        meta = self._get_result_meta(
            result=result, state=state, traceback=traceback, request=request
        )
        meta["task_id"] = task_id
        queue, attempt, tag = self._job_context(task_id, request)
        finished = keys.completed_key(queue) if outcome == "completed" else keys.failed_key(queue)
        keep = DEFAULT_KEEP_COMPLETED if outcome == "completed" else DEFAULT_KEEP_FAILED
        kind = "completed" if outcome == "completed" else "failed"
        script_keys = [
            keys.job_key(task_id),
            keys.active_key(queue),
            finished,
            bytes_to_str(self.get_key_for_task(task_id)),
            keys.events_key(queue),
            keys.metrics_key(queue, kind),
            keys.metrics_meta_key(queue, kind),
            keys.KOMBU_UNACKED_KEY,
            keys.KOMBU_UNACKED_INDEX_KEY,
        ]
        settings = get_settings()
        args = [
            outcome,
            self.encode(meta),
            task_id,
            attempt,
            _outcome_value(outcome, meta, result),
            (traceback or "")[-STACKTRACE_MAX_CHARS:],
            keep,
            keys.JOB_KEY_PREFIX,
            self.task_keyprefix,
            settings.events_max_len,
            settings.metrics_max_minutes,
            keys.JOB_LOGS_KEY_PREFIX,
            tag,
        ]
        self.ensure(self._run_finish, (script_keys, args))
        return result

    def _run_finish(self, script_keys: list[str], args: list[Any]) -> None:
        scripts.FINISH(keys=script_keys, args=args, client=self.client)

    def _job_context(self, task_id: str, request: Any) -> tuple[str, int, str]:
        """The job's queue, the try's number and its delivery's tag ('' when none)."""
        job = JobTry.from_request(request)
        queue = job.queue
        if not queue:
            # Outside a worker's request (e.g. a revoke) the record knows the queue.
            stored = broker_client().hget(keys.job_key(task_id), "queue")
            queue = bytes_to_str(stored) if stored else "unknown"
        return queue, job.attempt, job.tag


def _outcome_value(outcome: str, meta: dict[str, Any], result: Any) -> str:
    if outcome == "completed":
        return json.dumps(meta.get("result"))
    # Celery hands the backend the exception already encoded for JSON.
    encoded = meta.get("result")
    if isinstance(encoded, dict) and "exc_type" in encoded:
        message = encoded.get("exc_message")
        if isinstance(message, list | tuple):
            message = ", ".join(str(part) for part in message)
        return f"{encoded['exc_type']}: {message}"
    return str(result)

"""Celery's Redis result backend with BullMQ's retention.

When a job finishes, one Lua script (``FINISH``) stores Celery's result, records the
outcome on the job, adds it to the queue's completed or failed set, and trims that
set to the newest N (100 completed / 1000 failed by default, or the job's
``remove_on_complete`` / ``remove_on_fail``), deleting the records and results of
what it trims, and acks the delivery that ran the try. Kept results never expire,
and memory stays bounded however many jobs run. A job run with ``ignore_result``
finishes the same way, without Celery's result.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from celery import states
from celery.backends.redis import RedisBackend
from kombu.utils.encoding import bytes_to_str

from csgoflip_jobs import keys
from csgoflip_jobs.engine import scripts, tracing
from csgoflip_jobs.engine.job_try import JobTry
from csgoflip_jobs.engine.options import DEFAULT_KEEP_COMPLETED, DEFAULT_KEEP_FAILED
from csgoflip_jobs.helpers.connection import broker_client
from csgoflip_jobs.settings import get_settings

STACKTRACE_MAX_CHARS = 4000
"""Longest traceback kept on a failed job, so 1000 failed jobs stay small."""

UNHELD_RESULT_EXPIRES_S = 86_400
"""How long the result of a task no job holds is kept (a day): e.g. a chain's later
task that failed with the one before it, a chord body failed by its header, a task
revoked before it was sent."""

log = logging.getLogger(__name__)

_NO_QUEUE = "unknown"
"""The queue named for a task id no job record holds."""

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

    def mark_as_done(
        self,
        task_id: str,
        result: Any,
        request: Any = None,
        store_result: bool = True,
        state: str = states.SUCCESS,
    ) -> None:
        stored = store_result and not getattr(request, "ignore_result", False)
        if not stored and _in_a_job(request):
            self.store_result(task_id, result, state, request=request, keep_result=False)
        super().mark_as_done(task_id, result, request, store_result, state)

    def mark_as_failure(
        self,
        task_id: str,
        exc: BaseException,
        traceback: str | None = None,
        request: Any = None,
        store_result: bool = True,
        call_errbacks: bool = True,
        state: str = states.FAILURE,
    ) -> None:
        if not store_result and _in_a_job(request):
            self.store_result(
                task_id, exc, state, traceback=traceback, request=request, keep_result=False
            )
        super().mark_as_failure(
            task_id, exc, traceback, request, store_result, call_errbacks, state
        )

    def _store_result(
        self,
        task_id: str,
        result: Any,
        state: str,
        traceback: str | None = None,
        request: Any = None,
        **kwargs: Any,
    ) -> Any:
        keep_result = kwargs.pop("keep_result", True)
        outcome = _OUTCOMES.get(state)
        if outcome is None:
            return super()._store_result(task_id, result, state, traceback, request, **kwargs)
        meta = self._get_result_meta(
            result=result, state=state, traceback=traceback, request=request
        )
        meta["task_id"] = task_id
        queue, job_id, attempt, tag = self._job_context(task_id, request)
        result_key = bytes_to_str(self.get_key_for_task(task_id))
        encoded = self.encode(meta) if keep_result else ""
        finished = keys.completed_key(queue) if outcome == "completed" else keys.failed_key(queue)
        keep = DEFAULT_KEEP_COMPLETED if outcome == "completed" else DEFAULT_KEEP_FAILED
        kind = "completed" if outcome == "completed" else "failed"
        script_keys = [
            keys.job_key(queue, job_id),
            keys.active_key(queue),
            finished,
            result_key,
            keys.events_key(queue),
            keys.metrics_key(queue, kind),
            keys.metrics_meta_key(queue, kind),
            keys.KOMBU_UNACKED_KEY,
            keys.KOMBU_UNACKED_INDEX_KEY,
        ]
        settings = get_settings()
        args = [
            outcome,
            encoded,
            job_id,
            attempt,
            _outcome_value(outcome, meta, result),
            (traceback or "")[-STACKTRACE_MAX_CHARS:],
            keep,
            keys.job_key_prefix(queue),
            self.task_keyprefix,
            settings.events_max_len,
            settings.metrics_max_minutes,
            keys.job_logs_key_prefix(queue),
            tag,
        ]
        finished = self.ensure(self._run_finish, (script_keys, args))
        if not finished and queue == _NO_QUEUE and encoded:
            # An outcome of a task no job holds: failed on its behalf before it was sent
            # (a chain's later task, a chord's body), or revoked before it was sent.
            # Celery's result alone, which no retention set trims: it expires instead.
            # Published as well, as FINISH does: a waiting get() or group join hears it.
            with self.client.pipeline() as pipe:
                pipe.set(result_key, encoded, ex=UNHELD_RESULT_EXPIRES_S)
                pipe.publish(result_key, encoded)
                pipe.execute()
        tracing.span_event(f"job.{outcome}", attempt=attempt)
        return result

    def _run_finish(self, script_keys: list[str], args: list[Any]) -> int:
        return int(scripts.FINISH(keys=script_keys, args=args, client=self.client))

    def _job_context(self, task_id: str, request: Any) -> tuple[str, str, int, str]:
        """The job's queue and id, the try's number and its delivery's tag ('' when none)."""
        job = JobTry.from_request(request)
        if job.queue:
            return job.queue, job.job_id, job.attempt, job.tag
        # Outside a worker's request (e.g. a revoke): the job whose record names this task.
        queue, job_id = self._find_job(task_id) or (_NO_QUEUE, task_id)
        return queue, job_id, job.attempt, job.tag

    def _find_job(self, task_id: str) -> tuple[str, str] | None:
        """(queue, job id) of the job that is Celery task ``task_id``, if any: its job id
        is the task id, or ``<queue>:<job id>`` is (keys.task_id_for)."""
        candidates = []
        for queue in (q.name for q in self.app.conf.task_queues or ()):
            candidates.append((queue, task_id))
            if task_id.startswith(f"{queue}:"):
                candidates.append((queue, task_id[len(queue) + 1 :]))
        pipe = broker_client().pipeline(transaction=False)
        for queue, job_id in candidates:
            pipe.hmget(keys.job_key(queue, job_id), "queue", "task_id")
        for (queue, job_id), (stored, named) in zip(candidates, pipe.execute(), strict=True):
            if stored is not None and bytes_to_str(named or job_id) == task_id:
                return queue, job_id
        return None


def backend_aliases() -> dict[str, str]:
    """Celery's ``override_backends``: the result backend URL schemes that pick the
    platform's retaining backends (Redis, Redis over TLS, a group of Sentinels)."""
    return {
        "redis": f"{__name__}:RetainingRedisBackend",
        "rediss": f"{__name__}:RetainingRedisBackend",
        "sentinel": "csgoflip_jobs.engine.celery_ext.sentinel:RetainingSentinelBackend",
    }


def _in_a_job(request: Any) -> bool:
    """True for the request of a job's try run by a worker: when Celery keeps no result
    of it (``ignore_result``), its job must finish all the same (record, retention,
    ack)."""
    if request is None or getattr(request, "is_eager", False):
        return False
    return bool(JobTry.from_request(request).queue)


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

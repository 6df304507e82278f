"""Changing a queue's jobs: add, remove, promote, change delay or priority, pause,
drain, clean, obliterate, retry. Each public method is an operation: a plain method
of ``JobQueue``, a coroutine method of the asyncio ``JobQueue``; each change is one
atomic script in Redis that also writes its event."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from kombu.transport import redis as kombu_redis

from csgoflip_jobs import keys
from csgoflip_jobs.engine import scripts
from csgoflip_jobs.engine.enqueue import JOB_HEADER
from csgoflip_jobs.engine.errors import JobOptionsError, JobStateError
from csgoflip_jobs.engine.job import Job
from csgoflip_jobs.engine.options import (
    MAX_KEEP,
    parse_options,
    priority_level,
    require_delay_ms,
    require_priority,
)
from csgoflip_jobs.engine.producer import (
    OPTION_NAMES,
    add_jobs,
    check_jobs,
    prepare,
    send_checked,
)
from csgoflip_jobs.engine.queue_base import BATCH, Limits, require_state
from csgoflip_jobs.engine.queue_reads import QueueReads
from csgoflip_jobs.helpers.arguments import whole_number
from csgoflip_jobs.helpers.connection import as_text
from csgoflip_jobs.helpers.redis_calls import C, Command, ScriptCall, Steps, one, operation


class QueueChanges(QueueReads[C]):
    """The operations that change a queue's jobs (and read them: QueueReads)."""

    @operation
    def add(
        self,
        job_name: str,
        data: Mapping[str, Any] | None = None,
        *,
        delay: int | None = None,
        priority: int | None = None,
        attempts: int | None = None,
        backoff: int | Mapping[str, Any] | None = None,
        remove_on_complete: bool | int | None = None,
        remove_on_fail: bool | int | None = None,
        job_id: str | None = None,
    ) -> Steps[str]:
        """Enqueue one job and return its id; an existing ``job_id`` is not added again.

        Raises JobOptionsError for bad input, and a BrokerError when Redis cannot be
        reached in time, refuses the password, or is out of memory. With
        REDIS_MIN_REPLICAS_ACK >= 1 it returns only once that many replicas hold the
        job, else raises BrokerNotReplicatedError (add it again with the same job_id).
        """
        options = parse_options(
            delay=delay,
            priority=priority,
            attempts=attempts,
            backoff=backoff,
            remove_on_complete=remove_on_complete,
            remove_on_fail=remove_on_fail,
            job_id=job_id,
        )
        return (yield from self._add([(job_name, data, options)]))[0]

    @operation
    def add_bulk(self, jobs: Iterable[Mapping[str, Any]]) -> Steps[list[str]]:
        """Enqueue many jobs in one round trip: ``[{"name", "data", "opts": {...}}, ...]``.

        Every job is validated before any is sent, so bad input enqueues nothing; the
        errors are :meth:`add`'s (a BrokerError's ``stored_ids`` and ``refused`` say
        which of the batch Redis holds).
        """
        prepared = [prepare(i, job) for i, job in enumerate(jobs)]
        return (yield from self._add(prepared)) if prepared else []

    def _add(self, jobs: list[Any]) -> Steps[list[str]]:
        limits = self.limits
        return (
            yield from add_jobs(
                self.app,
                self.name,
                jobs,
                limits.job_max_bytes,
                limits.events_max_len,
                limits.durability,
            )
        )

    @operation
    def remove(self, job_id: str) -> Steps[bool]:
        """Remove a job in any state but running, with its result and logs; False when
        it is running or unknown. A removed waiting or delayed job never runs."""
        return (yield from self._remove(job_id))

    def _remove(self, job_id: str) -> Steps[bool]:
        call = ScriptCall(
            scripts.REMOVE,
            [
                self.job_key(job_id),
                keys.delayed_key(self.name),
                keys.completed_key(self.name),
                keys.failed_key(self.name),
                keys.job_logs_key(self.name, job_id),
                self.events,
                *self.lists,
            ],
            [job_id, self.limits.events_max_len, keys.CELERY_RESULT_KEY_PREFIX],
        )
        return (yield from one(call, lambda reply: int(reply) == 1))

    @operation
    def promote(self, job_id: str) -> Steps[bool]:
        """Make a delayed job waiting now; False when it is not delayed."""
        call = ScriptCall(
            scripts.PROMOTE_JOB,
            [self.job_key(job_id), keys.delayed_key(self.name), keys.ready_key(self.name),
             self.events],
            [job_id, self.limits.events_max_len],
        )  # fmt: skip
        return (yield from one(call, bool))

    @operation
    def change_delay(self, job_id: str, delay_ms: int) -> Steps[bool]:
        """Make a delayed job due ``delay_ms`` from now (at most MAX_DELAY_MS); False when
        it is not delayed."""
        delay_ms = require_delay_ms("delay_ms", delay_ms)
        call = ScriptCall(
            scripts.CHANGE_DELAY,
            [self.job_key(job_id), keys.delayed_key(self.name), keys.wake_key(self.name),
             self.events],
            [job_id, delay_ms, self.limits.events_max_len],
        )  # fmt: skip
        return (yield from one(call, bool))

    @operation
    def change_priority(self, job_id: str, priority: int) -> Steps[bool]:
        """Give a waiting or delayed job another priority (1 highest, 0 none); False
        when it is neither or a worker already holds its message."""
        priority = require_priority(priority)
        state, message = yield Command("HMGET", self.job_key(job_id), "state", "msg")
        if message is None or as_text(state) not in ("waiting", "delayed"):
            return False
        read = as_text(message)
        rewritten, opts = _with_priority(json.loads(read), priority)
        call = ScriptCall(
            scripts.CHANGE_PRIORITY,
            [self.job_key(job_id), keys.priority_list_key(self.name, priority_level(priority))],
            [read, kombu_redis.dumps(rewritten), json.dumps(opts)],
        )
        return (yield from one(call, bool))

    @operation
    def pause(self) -> Steps[bool]:
        """Stop every worker starting this queue's jobs (kept in Redis, so restarted
        workers stay paused); adds are still accepted and delayed jobs still come
        due. False when it was paused already."""
        return (yield from self._pause(True))

    @operation
    def resume(self) -> Steps[bool]:
        """Let workers start this queue's jobs again; False when it was not paused."""
        return (yield from self._pause(False))

    def _pause(self, paused: bool) -> Steps[bool]:
        call = ScriptCall(
            scripts.PAUSE,
            [keys.paused_key(self.name), self.events, keys.ready_key(self.name), *self.lists],
            [1 if paused else 0, self.limits.events_max_len],
        )
        return (yield from one(call, bool))

    @operation
    def is_paused(self) -> Steps[bool]:
        """True while the queue is paused."""
        return (yield from one(Command("EXISTS", keys.paused_key(self.name)), bool))

    @operation
    def drain(self, delayed: bool = False) -> Steps[int]:
        """Remove every waiting job (and, with ``delayed``, every delayed one); how many."""
        return (yield from drain(self.name, self.lists, self.limits, delayed))[0]

    @operation
    def clean(self, grace_ms: int, limit: int, state: str = "completed") -> Steps[list[str]]:
        """Remove up to ``limit`` jobs in ``state`` (completed, failed, waiting or
        delayed) older than ``grace_ms`` (finished, or added, that long ago); their ids."""
        grace_ms = require_delay_ms("grace_ms", grace_ms)
        limit = whole_number("limit", limit, maximum=MAX_KEEP, error=JobOptionsError)
        if state in ("completed", "failed"):
            return (yield from self._clean_finished(state, grace_ms, limit))
        if state not in ("waiting", "delayed"):
            raise JobOptionsError(
                f"clean takes completed, failed, waiting or delayed, not {state!r}"
            )
        seconds, micros = yield Command("TIME")
        cutoff = int(seconds) * 1000 + int(micros) // 1000 - grace_ms
        ids = yield from self._ids(state, 0, -1, True)
        removed: list[str] = []
        for job in (yield from self._jobs(ids)):
            old = len(removed) < limit and (job.timestamp or 0) < cutoff
            if old and (yield from self._remove(job.id)):
                removed.append(job.id)
        return removed

    def _clean_finished(self, state: str, grace_ms: int, limit: int) -> Steps[list[str]]:
        key = keys.completed_key(self.name) if state == "completed" else keys.failed_key(self.name)
        call = ScriptCall(
            scripts.CLEAN,
            [key, self.events],
            [keys.job_key_prefix(self.name), keys.CELERY_RESULT_KEY_PREFIX,
             keys.job_logs_key_prefix(self.name), grace_ms, limit, state,
             self.limits.events_max_len],
        )  # fmt: skip
        return (yield from one(call, lambda ids: [as_text(i) for i in ids]))

    @operation
    def obliterate(self, force: bool = False) -> Steps[int]:
        """Delete the queue's jobs of every state and its own keys; how many jobs. Raises
        JobStateError while jobs run, unless ``force`` (their outcomes are dropped)."""
        own = [
            self.events,
            keys.paused_key(self.name),
            keys.ready_key(self.name),
            keys.wake_key(self.name),
            *(keys.metrics_key(self.name, kind) for kind in ("completed", "failed")),
            *(keys.metrics_meta_key(self.name, kind) for kind in ("completed", "failed")),
        ]
        sets = [keys.active_key(self.name), keys.delayed_key(self.name),
                keys.completed_key(self.name), keys.failed_key(self.name)]  # fmt: skip
        args = [1 if force else 0, keys.job_key_prefix(self.name), keys.CELERY_RESULT_KEY_PREFIX,
                keys.job_logs_key_prefix(self.name), BATCH]  # fmt: skip
        deleted, done = 0, False
        while not done:
            reply = yield ScriptCall(scripts.OBLITERATE, [*sets, *own, "", *self.lists], args)
            if reply == -1:
                raise JobStateError(
                    f"queue {self.name!r} has running jobs; obliterate(force=True) deletes "
                    "them too (their outcomes are then dropped)"
                )
            deleted, done = deleted + int(reply[0]), bool(reply[1])
        return deleted

    @operation
    def retry_failed(self, job: Job) -> Steps[str]:
        """Enqueue a failed job again under its id, name, data and options (no delay).

        A job that could not be enqueued again (JobOptionsError: e.g. its task is not
        registered in this process) stays failed: it is checked before it is removed.
        """
        require_state(job, job.id, "failed")
        kept = OPTION_NAMES - {"delay", "job_id"}
        options = parse_options(job_id=job.id, **{k: v for k, v in job.opts.items() if k in kept})
        limits = self.limits
        checked = check_jobs(
            self.app, self.name, [(job.name, job.data, options)], limits.job_max_bytes
        )
        yield from self._remove(job.id)
        added = send_checked(self.app, self.name, checked, limits.events_max_len, limits.durability)
        return (yield from added)[0]


def drain(
    queue: str, lists: Sequence[str], limits: Limits, delayed: bool
) -> Steps[tuple[int, int]]:
    """Remove every waiting job of ``queue`` (and delayed ones too): (jobs removed,
    messages taken off its lists, stale ones included). ``celery purge`` uses it too."""
    removed, popped, done = 0, 0, False
    while not done:
        count, finished, taken = yield ScriptCall(
            scripts.DRAIN,
            [keys.delayed_key(queue), keys.events_key(queue), keys.KOMBU_UNACKED_KEY, *lists],
            [keys.job_key_prefix(queue), BATCH, 1 if delayed else 0, limits.events_max_len,
             queue, JOB_HEADER, keys.job_logs_key_prefix(queue)],
        )  # fmt: skip
        removed, popped, done = removed + int(count), popped + int(taken), bool(finished)
    return removed, popped


def _with_priority(message: dict[str, Any], priority: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The message (and the job's options) with ``priority``: kombu's level in its
    properties, BullMQ's number in the platform's header."""
    properties = {**message["properties"], "priority": priority_level(priority)}
    header = dict(message["headers"].get(JOB_HEADER) or {})
    opts = {k: v for k, v in (header.get("opts") or {}).items() if k != "priority"}
    if priority:
        opts["priority"] = priority
    header["opts"] = opts
    headers = {**message["headers"], JOB_HEADER: header}
    return {**message, "properties": properties, "headers": headers}, opts

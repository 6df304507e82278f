"""The operations of one queue, as steps (see :mod:`csgoflip_jobs.helpers.redis_calls`):
the keys, script arguments and reply decoding that ``JobQueue`` and its asyncio
twin share. Each script call here is one atomic step in Redis.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kombu.transport import redis as kombu_redis

from csgoflip_jobs import keys
from csgoflip_jobs.engine import scripts
from csgoflip_jobs.engine.enqueue import JOB_HEADER
from csgoflip_jobs.engine.errors import JobOptionsError, JobStateError
from csgoflip_jobs.engine.job import STATES, Job
from csgoflip_jobs.engine.options import MAX_PRIORITY_LEVEL, priority_level
from csgoflip_jobs.helpers.arguments import whole_number
from csgoflip_jobs.helpers.connection import as_text
from csgoflip_jobs.helpers.redis_calls import Batch, Command, ScriptCall, Steps, one
from csgoflip_jobs.settings import Settings

BATCH = 1000
"""Jobs handled by one call of the scripts that work through a whole queue."""

LIST_STATES = (*STATES, "paused")


@dataclass(frozen=True)
class Limits:
    """The bounds every state change writes with (from the settings)."""

    events_max_len: int
    metrics_max_minutes: int
    job_logs_max: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        """EVENTS_MAX_LEN, METRICS_MAX_MINUTES and JOB_LOGS_MAX."""
        return cls(settings.events_max_len, settings.metrics_max_minutes, settings.job_logs_max)


class QueueOps:
    """Builds the steps of every read and change of one queue's jobs."""

    def __init__(self, name: str, limits: Limits) -> None:
        self.name = name
        self.limits = limits
        self.lists = [
            keys.priority_list_key(name, level) for level in range(MAX_PRIORITY_LEVEL + 1)
        ]
        self.events = keys.events_key(name)

    # --- reading jobs ---------------------------------------------------------------
    def get_job(self, job_id: str) -> Steps[Job | None]:
        """The job, or None when unknown (never added, removed, or trimmed)."""
        record = yield Command("HGETALL", keys.job_key(job_id))
        return Job.from_record(job_id, record) if record else None

    def jobs(self, ids: Sequence[str]) -> Steps[list[Job]]:
        """The jobs of ``ids`` still on record, in that order."""
        if not ids:
            return []
        records = yield Batch([Command("HGETALL", keys.job_key(i)) for i in ids])
        return [Job.from_record(i, r) for i, r in zip(ids, records, strict=True) if r]

    def ids(self, state: str, start: int, end: int, asc: bool) -> Steps[list[str]]:
        """Ids of the jobs in ``state``, ranks ``start``..``end`` (end -1: all).

        Ascending order is BullMQ's: waiting next to run first, delayed soonest due
        first, active oldest start first, completed and failed oldest first.
        """
        if state not in LIST_STATES:
            raise JobOptionsError(f"unknown state {state!r}; the states are {LIST_STATES}")
        start = whole_number("start", start, minimum=0, error=JobOptionsError)
        end = whole_number("end", end, minimum=-1, error=JobOptionsError)
        if state in ("waiting", "paused"):
            paused = yield Command("EXISTS", keys.paused_key(self.name))
            if bool(paused) != (state == "paused"):
                return []
            return (yield from self._waiting_ids(start, end, asc))
        if state == "active":
            return (yield from self._active_ids(start, end, asc))
        key = {
            "delayed": keys.delayed_key(self.name),
            "completed": keys.completed_key(self.name),
            "failed": keys.failed_key(self.name),
        }[state]
        command = "ZRANGE" if asc else "ZREVRANGE"
        return [as_text(i) for i in (yield Command(command, key, start, end))]

    def _waiting_ids(self, start: int, end: int, asc: bool) -> Steps[list[str]]:
        if asc:
            found = yield self._list_waiting(start, end)
            return [as_text(i) for i in found if i]
        every = [as_text(i) for i in (yield self._list_waiting(0, -1)) if i]
        every.reverse()
        return every[start : None if end == -1 else end + 1]

    def _list_waiting(self, start: int, end: int) -> ScriptCall:
        return ScriptCall(
            scripts.LIST_WAITING,
            [keys.KOMBU_UNACKED_KEY, *self.lists],
            [self.name, keys.JOB_KEY_PREFIX, JOB_HEADER, start, end],
        )

    def _active_ids(self, start: int, end: int, asc: bool) -> Steps[list[str]]:
        members = [as_text(i) for i in (yield Command("SMEMBERS", keys.active_key(self.name)))]
        started = yield Batch([Command("HGET", keys.job_key(i), "processed_on") for i in members])
        order = sorted(zip(members, started, strict=True), key=lambda p: int(p[1] or 0))
        ordered = [i for i, _ in (order if asc else reversed(order))]
        return ordered[start : None if end == -1 else end + 1]

    def list_jobs(self, states: Sequence[str], start: int, end: int, asc: bool) -> Steps[list[Job]]:
        """The jobs of each state in turn, each ranked ``start``..``end`` (BullMQ's getJobs)."""
        found: list[str] = []
        for state in states:
            found += yield from self.ids(state, start, end, asc)
        return (yield from self.jobs(found))

    def counts(self) -> Steps[dict[str, int]]:
        """Jobs per state in one atomic snapshot (see the JOB_COUNTS script)."""
        call = ScriptCall(
            scripts.JOB_COUNTS,
            [
                *self.lists,
                keys.delayed_key(self.name),
                keys.active_key(self.name),
                keys.completed_key(self.name),
                keys.failed_key(self.name),
                keys.KOMBU_UNACKED_KEY,
                keys.paused_key(self.name),
            ],
            [self.name, keys.JOB_KEY_PREFIX, JOB_HEADER],
        )
        names = ("waiting", "delayed", "active", "completed", "failed", "paused")
        return (yield from one(call, lambda reply: dict(zip(names, map(int, reply), strict=True))))

    def logs(self, job_id: str, start: int, end: int) -> Steps[list[str]]:
        """The job's log lines, oldest first, ranks ``start``..``end``."""
        lines = yield Command("LRANGE", keys.job_logs_key(job_id), start, end)
        return [as_text(line) for line in lines]

    def metrics(self, kind: str, start: int, end: int) -> Steps[dict[str, Any]]:
        """Jobs completed (or failed) per minute, newest first, ``data[0]`` this minute."""
        if kind not in ("completed", "failed"):
            raise JobOptionsError(f"metrics are 'completed' or 'failed', not {kind!r}")
        kept = self.limits.metrics_max_minutes
        now, meta, data = yield Batch(
            [
                Command("TIME"),
                Command("HGETALL", keys.metrics_meta_key(self.name, kind)),
                Command("LRANGE", keys.metrics_key(self.name, kind), 0, kept - 2),
            ]
        )
        return _series(int(now[0]) // 60, meta, data, kept, start, end)

    # --- changing jobs ----------------------------------------------------------------
    def remove(self, job_id: str) -> Steps[bool]:
        """Remove a job that is not running (any other state); False when it runs or is
        unknown. A removed job never runs."""
        call = ScriptCall(
            scripts.REMOVE,
            [
                keys.job_key(job_id),
                keys.delayed_key(self.name),
                keys.completed_key(self.name),
                keys.failed_key(self.name),
                keys.result_key(job_id),
                keys.job_logs_key(job_id),
                self.events,
                *self.lists,
            ],
            [job_id, self.limits.events_max_len],
        )
        return (yield from one(call, lambda reply: int(reply) == 1))

    def promote(self, job_id: str) -> Steps[bool]:
        """Make a delayed job waiting now; False when it is not delayed."""
        call = ScriptCall(
            scripts.PROMOTE_JOB,
            [
                keys.job_key(job_id),
                keys.delayed_key(self.name),
                keys.ready_key(self.name),
                self.events,
            ],
            [job_id, self.limits.events_max_len],
        )
        return (yield from one(call, bool))

    def change_delay(self, job_id: str, delay_ms: int) -> Steps[bool]:
        """Make a delayed job due ``delay_ms`` from now; False when it is not delayed."""
        delay_ms = whole_number("delay_ms", delay_ms, minimum=0, error=JobOptionsError)
        call = ScriptCall(
            scripts.CHANGE_DELAY,
            [
                keys.job_key(job_id),
                keys.delayed_key(self.name),
                keys.wake_key(self.name),
                self.events,
            ],
            [job_id, delay_ms, self.limits.events_max_len],
        )
        return (yield from one(call, bool))

    def change_priority(self, job_id: str, priority: int) -> Steps[bool]:
        """Give a waiting or delayed job another priority; False when it is neither (or
        a worker already holds its message)."""
        priority = whole_number("priority", priority, minimum=0, error=JobOptionsError)
        state, message = yield Command("HMGET", keys.job_key(job_id), "state", "msg")
        if message is None or as_text(state) not in ("waiting", "delayed"):
            return False
        read = as_text(message)
        rewritten, opts = _with_priority(json.loads(read), priority)
        level = priority_level(priority)
        call = ScriptCall(
            scripts.CHANGE_PRIORITY,
            [keys.job_key(job_id), keys.priority_list_key(self.name, level)],
            [read, kombu_redis.dumps(rewritten), json.dumps(opts)],
        )
        return (yield from one(call, bool))

    def pause(self, paused: bool) -> Steps[bool]:
        """Pause (or resume) the queue for every worker; False when it already was so."""
        call = ScriptCall(
            scripts.PAUSE,
            [keys.paused_key(self.name), self.events, keys.ready_key(self.name), *self.lists],
            [1 if paused else 0, self.limits.events_max_len],
        )
        return (yield from one(call, bool))

    def is_paused(self) -> Steps[bool]:
        """True while the queue is paused."""
        return (yield from one(Command("EXISTS", keys.paused_key(self.name)), bool))

    def drain(self, delayed: bool) -> Steps[tuple[int, int]]:
        """Remove every waiting job (and delayed ones too): (jobs removed, messages
        taken off the queue's lists, stale ones included)."""
        removed, popped, done = 0, 0, False
        while not done:
            count, finished, taken = yield ScriptCall(
                scripts.DRAIN,
                [keys.delayed_key(self.name), self.events, keys.KOMBU_UNACKED_KEY, *self.lists],
                [
                    keys.JOB_KEY_PREFIX,
                    BATCH,
                    1 if delayed else 0,
                    self.limits.events_max_len,
                    self.name,
                    JOB_HEADER,
                    keys.JOB_LOGS_KEY_PREFIX,
                ],
            )
            removed, popped, done = removed + int(count), popped + int(taken), bool(finished)
        return removed, popped

    def clean_finished(self, state: str, grace_ms: int, limit: int) -> Steps[list[str]]:
        """Remove up to ``limit`` completed (or failed) jobs that finished more than
        ``grace_ms`` ago; their ids."""
        key = keys.completed_key(self.name) if state == "completed" else keys.failed_key(self.name)
        call = ScriptCall(
            scripts.CLEAN,
            [key, self.events],
            [
                keys.JOB_KEY_PREFIX,
                keys.CELERY_RESULT_KEY_PREFIX,
                keys.JOB_LOGS_KEY_PREFIX,
                grace_ms,
                limit,
                state,
                self.limits.events_max_len,
            ],
        )
        return (yield from one(call, lambda ids: [as_text(i) for i in ids]))

    def obliterate(self, force: bool) -> Steps[int]:
        """Delete the queue and all its jobs; JobStateError while jobs run (unless forced)."""
        own = [
            self.events,
            keys.paused_key(self.name),
            keys.ready_key(self.name),
            keys.wake_key(self.name),
            *(keys.metrics_key(self.name, kind) for kind in ("completed", "failed")),
            *(keys.metrics_meta_key(self.name, kind) for kind in ("completed", "failed")),
        ]
        deleted, done = 0, False
        while not done:
            reply = yield ScriptCall(
                scripts.OBLITERATE,
                [
                    keys.active_key(self.name),
                    keys.delayed_key(self.name),
                    keys.completed_key(self.name),
                    keys.failed_key(self.name),
                    *own,
                    "",
                    *self.lists,
                ],
                [
                    1 if force else 0,
                    keys.JOB_KEY_PREFIX,
                    keys.CELERY_RESULT_KEY_PREFIX,
                    keys.JOB_LOGS_KEY_PREFIX,
                    BATCH,
                ],
            )
            if reply == -1:
                raise JobStateError(
                    f"queue {self.name!r} has running jobs; obliterate(force=True) deletes "
                    "them too (their outcomes are then dropped)"
                )
            deleted, done = deleted + int(reply[0]), bool(reply[1])
        return deleted


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


def _series(
    minute: int, meta: Any, data: Sequence[Any], kept: int, start: int, end: int
) -> dict[str, Any]:
    fields = {as_text(k): int(v) for k, v in dict(meta).items()}
    counts = [int(v) for v in data]
    last = fields.get("minute")
    if last is not None:
        counts = [0] * max(0, minute - last) + [fields.get("current", 0), *counts]
    counts = counts[:kept]
    return {
        "data": counts[start : None if end == -1 else end + 1],
        "count": len(counts),
        "total": fields.get("total", 0),
    }


def require_state(job: Job | None, job_id: str, *allowed: str) -> Job:
    """``job`` when it exists and is in one of ``allowed``; else JobStateError saying why."""
    if job is None:
        raise JobStateError(f"job {job_id!r} does not exist (never added, removed or trimmed)")
    if job.state not in allowed:
        raise JobStateError(f"job {job_id!r} is {job.state}, not {' or '.join(allowed)}")
    return job

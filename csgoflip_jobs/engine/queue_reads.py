"""Reading a queue's jobs: by id, by state in BullMQ's order, counts, logs, metrics, and
waiting for a job's outcome. Each public method is an operation: a plain method of
``JobQueue``, a coroutine method of the asyncio ``JobQueue``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from csgoflip_jobs import keys
from csgoflip_jobs.engine import events, scripts
from csgoflip_jobs.engine.enqueue import JOB_HEADER
from csgoflip_jobs.engine.errors import JobOptionsError
from csgoflip_jobs.engine.job import STATES, Job
from csgoflip_jobs.engine.queue_base import QueueBase
from csgoflip_jobs.helpers.arguments import whole_number
from csgoflip_jobs.helpers.connection import as_text
from csgoflip_jobs.helpers.redis_calls import Batch, C, Command, ScriptCall, Steps, one, operation

LIST_STATES = (*STATES, "paused")

MAX_RANK = 2**53
"""Largest ``start`` or ``end`` of a listing (Redis takes ranks as 64-bit integers)."""

WAIT_BLOCK_S = 1.0
"""Longest one wait for an event blocks before the job's state is read again."""


class QueueReads(QueueBase[C]):
    """The read operations of a queue."""

    @operation
    def get_job(self, job_id: str) -> Steps[Job | None]:
        """The job with this id, in whatever state, or None when unknown or removed."""
        record = yield Command("HGETALL", self.job_key(job_id))
        return Job.from_record(job_id, record) if record else None

    @operation
    def get_jobs(
        self, states: Sequence[str], start: int = 0, end: int = -1, asc: bool = False
    ) -> Steps[list[Job]]:
        """The jobs of each state in turn (waiting, delayed, active, completed, failed,
        paused), each ranked ``start``..``end``; newest first unless ``asc`` (BullMQ's
        ascending order: waiting next to run first, delayed soonest due first, active
        oldest start first)."""
        found: list[str] = []
        for state in states:
            found += yield from self._ids(state, start, end, asc)
        return (yield from self._jobs(found))

    @operation
    def get_job_ids(
        self, state: str, start: int = 0, end: int = -1, asc: bool = False
    ) -> Steps[list[str]]:
        """The ids of the jobs in ``state``, ranked as :meth:`get_jobs` ranks them, without
        reading their records."""
        return (yield from self._ids(state, start, end, asc))

    @operation
    def get_job_names(self, job_ids: Sequence[str]) -> Steps[list[str | None]]:
        """Each job's name (None for one gone), in one round trip: for filtering a listing
        by name without reading whole records."""
        if not job_ids:
            return []
        names = yield Batch([Command("HGET", self.job_key(i), "name") for i in job_ids])
        return [None if n is None else as_text(n) for n in names]

    @operation
    def get_waiting(self, start: int = 0, end: int = -1) -> Steps[list[Job]]:
        """Waiting jobs, the next to run first (none while the queue is paused)."""
        return (yield from self._jobs((yield from self._ids("waiting", start, end, True))))

    @operation
    def get_delayed(self, start: int = 0, end: int = -1) -> Steps[list[Job]]:
        """Delayed jobs (and retries waiting their backoff), the soonest due first."""
        return (yield from self._jobs((yield from self._ids("delayed", start, end, True))))

    @operation
    def get_active(self, start: int = 0, end: int = -1) -> Steps[list[Job]]:
        """Running jobs, the oldest start first."""
        return (yield from self._jobs((yield from self._ids("active", start, end, True))))

    @operation
    def get_completed(self, start: int = 0, end: int = -1) -> Steps[list[Job]]:
        """Retained completed jobs, newest first (ranks ``start``..``end`` inclusive)."""
        return (yield from self._jobs((yield from self._ids("completed", start, end, False))))

    @operation
    def get_failed(self, start: int = 0, end: int = -1) -> Steps[list[Job]]:
        """Retained failed jobs, newest first (ranks ``start``..``end`` inclusive)."""
        return (yield from self._jobs((yield from self._ids("failed", start, end, False))))

    @operation
    def get_job_counts(self) -> Steps[dict[str, int]]:
        """Jobs per state: waiting, delayed, active, completed, failed, paused.

        One atomic snapshot. Waiting includes jobs a worker has taken into its
        prefetch buffer but not started, so the counts add up to every job the queue
        holds; while the queue is paused its waiting jobs count as ``paused``.
        """
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
            [self.name, keys.job_key_prefix(self.name), JOB_HEADER],
        )
        names = ("waiting", "delayed", "active", "completed", "failed", "paused")
        return (yield from one(call, lambda reply: dict(zip(names, map(int, reply), strict=True))))

    @operation
    def get_job_logs(self, job_id: str, start: int = 0, end: int = -1) -> Steps[list[str]]:
        """The lines a job's task logged (``self.log``), oldest first."""
        lines = yield Command("LRANGE", keys.job_logs_key(self.name, job_id), start, end)
        return [as_text(line) for line in lines]

    @operation
    def get_metrics(self, kind: str, start: int = 0, end: int = -1) -> Steps[dict[str, Any]]:
        """Jobs ``"completed"`` or ``"failed"`` per minute: ``{"data": [...], "count",
        "total"}``, newest first with ``data[0]`` the current minute, kept for
        METRICS_MAX_MINUTES."""
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

    @operation
    def wait_until_finished(self, job_id: str, timeout_s: float = 30) -> Steps[Any]:
        """The job's return value once it completed. Raises JobFailedError (with the
        failed reason) when it failed, TimeoutError when it did not finish within
        ``timeout_s``, JobNotFoundError when no job has this id; a job that finished
        before the call is read at once."""
        return (
            yield from events.wait_until_finished(
                self.name, self._get_job, job_id, float(timeout_s), WAIT_BLOCK_S
            )
        )

    def _get_job(self, job_id: str) -> Steps[Job | None]:
        return (yield from QueueReads.get_job.build(self, job_id))

    # --- the pieces ---------------------------------------------------------------
    def _jobs(self, ids: Sequence[str]) -> Steps[list[Job]]:
        """The jobs of ``ids`` still on record, in that order."""
        if not ids:
            return []
        records = yield Batch([Command("HGETALL", self.job_key(i)) for i in ids])
        return [Job.from_record(i, r) for i, r in zip(ids, records, strict=True) if r]

    def _ids(self, state: str, start: int, end: int, asc: bool) -> Steps[list[str]]:
        if state not in LIST_STATES:
            raise JobOptionsError(f"unknown state {state!r}; the states are {LIST_STATES}")
        start = whole_number("start", start, minimum=0, maximum=MAX_RANK, error=JobOptionsError)
        end = whole_number("end", end, minimum=-1, maximum=MAX_RANK, error=JobOptionsError)
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
            [self.name, keys.job_key_prefix(self.name), JOB_HEADER, start, end],
        )

    def _active_ids(self, start: int, end: int, asc: bool) -> Steps[list[str]]:
        members = [as_text(i) for i in (yield Command("SMEMBERS", keys.active_key(self.name)))]
        started = yield Batch([Command("HGET", self.job_key(i), "processed_on") for i in members])
        order = sorted(zip(members, started, strict=True), key=lambda p: int(p[1] or 0))
        ordered = [i for i, _ in (order if asc else reversed(order))]
        return ordered[start : None if end == -1 else end + 1]


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

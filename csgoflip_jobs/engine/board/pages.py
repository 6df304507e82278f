"""What the Jobs pages show, read from Redis: queues with their counts and last hour,
a state's jobs a page at a time, one job whole.

Every number comes from :class:`~csgoflip_jobs.engine.job_queue.JobQueue` (the counts
are ``get_job_counts``, the per-minute series ``get_metrics``), so the board never
disagrees with ``csgoflip-jobs counts``. Lists are newest first in every state.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery import Celery

from csgoflip_jobs.engine.board.errors import NotFoundError
from csgoflip_jobs.engine.job import Job
from csgoflip_jobs.engine.job_queue import JobQueue, queue_names
from csgoflip_jobs.engine.queue_reads import LIST_STATES

PAGE_SIZE = 50
"""Jobs on one page of a state's list."""

FILTER_SCAN_LIMIT = 5000
"""Jobs of a state (newest first) a name filter looks through; older ones are not."""

SCAN_CHUNK = 500
"""Jobs read per round trip while a name filter scans."""

CHART_MINUTES = 60
"""Minutes of completed and failed counts the overview shows."""

COUNT_STATES = ("waiting", "delayed", "active", "paused", "completed", "failed")
"""The states the overview counts, in the order of its columns."""


@dataclass(frozen=True)
class QueueRow:
    """One queue on the overview: ``get_job_counts``, paused or not, and its last hour
    per minute, oldest minute first (the last entry is the current minute)."""

    name: str
    counts: dict[str, int]
    paused: bool
    completed_per_minute: list[int]
    failed_per_minute: list[int]

    def as_dict(self) -> dict[str, Any]:
        """Plain data, for JSON."""
        return dict(vars(self))


@dataclass(frozen=True)
class JobRow:
    """One line of a state's list."""

    id: str
    name: str
    state: str
    age_ms: int
    """Since the job was added."""
    attempts_made: int
    reason: str | None
    """The first line of the failed reason (failed jobs)."""
    due_in_ms: int | None
    """Until a delayed job becomes waiting (negative: overdue)."""

    def as_dict(self) -> dict[str, Any]:
        """Plain data, for JSON."""
        return dict(vars(self))


@dataclass(frozen=True)
class JobList:
    """One page of a state's jobs, newest first.

    Without a name filter ``total`` is the state's count and ``pages`` covers it; with
    one, ``total`` counts the matches among the newest ``scanned`` jobs, and
    ``complete`` says whether that was all of them.
    """

    queue: str
    state: str
    jobs: list[JobRow]
    page: int
    pages: int
    total: int
    name: str | None
    scanned: int
    complete: bool

    def as_dict(self) -> dict[str, Any]:
        """Plain data, for JSON."""
        return {**vars(self), "jobs": [row.as_dict() for row in self.jobs]}


@dataclass(frozen=True)
class JobDetail:
    """One job whole, with its logs (oldest line first)."""

    job: Job
    logs: list[str]

    def as_dict(self) -> dict[str, Any]:
        """Plain data, for JSON."""
        return {**self.job.as_dict(), "logs": self.logs}


class JobsBoard:
    """The board of every queue ``app`` defines; ``clock`` gives Unix seconds (ages)."""

    def __init__(self, app: Celery, clock: Callable[[], float] = time.time) -> None:
        self.app = app
        self._clock = clock

    @property
    def queue_names(self) -> tuple[str, ...]:
        """The app's queues, in their configured order."""
        return queue_names(self.app)

    def queue(self, name: str) -> JobQueue:
        """The queue called ``name``; NotFoundError naming the queues there are."""
        if name not in self.queue_names:
            raise NotFoundError(f"no queue {name!r}; the queues are {', '.join(self.queue_names)}")
        return JobQueue(name, app=self.app)

    def overview(self) -> list[QueueRow]:
        """Every queue, in configured order."""
        return [self.queue_row(name) for name in self.queue_names]

    def queue_row(self, name: str) -> QueueRow:
        """One queue's counts, pause and last hour."""
        queue = self.queue(name)
        counts = queue.get_job_counts()
        completed = queue.get_metrics("completed", 0, CHART_MINUTES - 1)["data"]
        failed = queue.get_metrics("failed", 0, CHART_MINUTES - 1)["data"]
        return QueueRow(
            name=name,
            counts={state: counts.get(state, 0) for state in COUNT_STATES},
            paused=queue.is_paused(),
            completed_per_minute=_last_hour(completed),
            failed_per_minute=_last_hour(failed),
        )

    def job_list(
        self, queue_name: str, state: str, page: int = 1, name: str | None = None
    ) -> JobList:
        """Page ``page`` (from 1) of the jobs in ``state``, newest first, only those
        called ``name`` when given. NotFoundError for an unknown queue or state."""
        queue = self.queue(queue_name)
        if state not in LIST_STATES:
            raise NotFoundError(f"no state {state!r}; the states are {', '.join(LIST_STATES)}")
        page = max(1, page)
        start = (page - 1) * PAGE_SIZE
        if name:
            jobs, total, scanned, complete = self._scan(queue, state, name, start)
        else:
            jobs = queue.get_jobs([state], start, start + PAGE_SIZE - 1)
            total = queue.get_job_counts()[state]
            scanned, complete = total, True
        rows = [self._row(job) for job in jobs]
        pages = max(1, math.ceil(total / PAGE_SIZE))
        return JobList(queue_name, state, rows, page, pages, total, name or None, scanned, complete)

    def _scan(
        self, queue: JobQueue, state: str, name: str, start: int
    ) -> tuple[list[Job], int, int, bool]:
        """The page from ``start`` of the jobs called ``name`` among the newest
        FILTER_SCAN_LIMIT of ``state``, how many match, how many were looked at, and
        whether that was all. Only the names are read while looking; whole records only
        for the page's jobs (a record may hold a megabyte of data)."""
        matches: list[str] = []
        scanned, complete = 0, False
        while scanned < FILTER_SCAN_LIMIT:
            ids = queue.get_job_ids(state, scanned, scanned + SCAN_CHUNK - 1)
            scanned += len(ids)
            names = queue.get_job_names(ids)
            matches += [i for i, n in zip(ids, names, strict=True) if n == name]
            if len(ids) < SCAN_CHUNK:
                complete = True
                break
        page = matches[start : start + PAGE_SIZE]
        jobs = [job for job in (queue.get_job(i) for i in page) if job is not None]
        return jobs, len(matches), scanned, complete

    def _row(self, job: Job) -> JobRow:
        now_ms = int(self._clock() * 1000)
        reason = (job.failed_reason or "").strip().splitlines()
        return JobRow(
            id=job.id,
            name=job.name,
            state=job.state,
            age_ms=max(0, now_ms - (job.timestamp or now_ms)),
            attempts_made=job.attempts_made,
            reason=reason[0] if reason and job.state == "failed" else None,
            due_in_ms=job.due - now_ms if job.due is not None and job.state == "delayed" else None,
        )

    def job(self, queue_name: str, job_id: str) -> Job:
        """The job ``job_id`` of this queue; NotFoundError when the queue holds none."""
        queue = self.queue(queue_name)
        job = queue.get_job(job_id)
        if job is None:
            raise NotFoundError(
                f"no job {job_id!r} in queue {queue_name!r} (never added, removed, "
                "or dropped by retention)"
            )
        return job

    def job_detail(self, queue_name: str, job_id: str) -> JobDetail:
        """The job whole, with its logs."""
        job = self.job(queue_name, job_id)
        return JobDetail(job, self.queue(queue_name).get_job_logs(job_id))


def _last_hour(newest_first: list[int]) -> list[int]:
    """CHART_MINUTES counts, oldest minute first, zeros where nothing was kept."""
    padded = [*newest_first[:CHART_MINUTES], *[0] * (CHART_MINUTES - len(newest_first))]
    return padded[::-1]


@dataclass(frozen=True)
class Bar:
    """One minute of a queue's chart: bar heights scaled to the busiest minute."""

    minutes_ago: int
    completed: int
    failed: int
    completed_height: float
    failed_height: float


def chart_bars(row: QueueRow, height: float = 32.0) -> list[Bar]:
    """The row's last hour as bars, oldest minute first, the busiest ``height`` tall."""
    pairs = list(zip(row.completed_per_minute, row.failed_per_minute, strict=True))
    peak = max([1, *(c + f for c, f in pairs)])
    return [
        Bar(len(pairs) - 1 - i, c, f, round(height * c / peak, 1), round(height * f / peak, 1))
        for i, (c, f) in enumerate(pairs)
    ]


def format_duration_ms(ms: int | None) -> str:
    """A short human duration: ``"42 s"``, ``"5 min"``, ``"3 h"``, ``"2 d"``."""
    if ms is None:
        return ""
    seconds = abs(ms) // 1000
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def format_timestamp_ms(ms: int | None) -> str:
    """A Unix-ms timestamp as UTC ISO 8601 to the second, or an empty string."""
    if ms is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ms / 1000))

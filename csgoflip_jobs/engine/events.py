"""A queue's durable event stream, and waiting for a job through it.

Every script that changes a job's state appends its event to the queue's Redis
Stream in the same atomic step (``added``, ``waiting``, ``delayed``, ``active``,
``progress``, ``completed``, ``failed``, ``removed``, ``stalled``, ``paused``,
``resumed``, ``drained``, ``cleaned``), so there is no event without its change
and no change without its event. The stream keeps about EVENTS_MAX_LEN entries.
These steps are shared by the sync and asyncio APIs.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import redis
import redis.asyncio as aioredis

from csgoflip_jobs import keys
from csgoflip_jobs.engine.errors import JobFailedError, JobNotFoundError
from csgoflip_jobs.engine.job import Job
from csgoflip_jobs.helpers.arguments import require_key
from csgoflip_jobs.helpers.connection import as_text
from csgoflip_jobs.helpers.redis_calls import (
    AsyncRunner,
    C,
    Command,
    RedisOps,
    Steps,
    SyncRunner,
    operation,
)
from csgoflip_jobs.settings import get_settings

Event = dict[str, Any]
"""``{"id": stream id, "event": name, "job_id": id or None, ...fields}``."""

_JSON_FIELDS = frozenset({"returnvalue", "data"})


def decode_entries(entries: Sequence[Any]) -> list[Event]:
    """Stream entries ``[(id, {field: value}), ...]`` (as redis-py parses them) as event
    dicts; the JSON fields (a completed job's ``returnvalue``, a progress event's
    ``data``) decoded."""
    events = []
    for entry_id, fields in entries:
        event: Event = {"id": as_text(entry_id)}
        for raw_name, raw_value in dict(fields).items():
            name, value = as_text(raw_name), as_text(raw_value)
            event[name] = json.loads(value) if name in _JSON_FIELDS else value
        event["job_id"] = event.get("job_id") or None
        events.append(event)
    return events


def events_last_id(queue: str) -> Steps[str]:
    """The id of the queue's newest event (``0-0`` when there is none): reading from
    it misses nothing that happens after this call."""
    newest = yield Command("XREVRANGE", keys.events_key(queue), "+", "-", "COUNT", 1)
    return as_text(newest[0][0]) if newest else "0-0"


def read(queue: str, after: str, block_ms: int, count: int) -> Steps[list[Event]]:
    """The queue's events after stream id ``after``, waiting up to ``block_ms`` for one."""
    reply = yield Command(
        "XREAD",
        "COUNT",
        count,
        "BLOCK",
        max(1, block_ms),
        "STREAMS",
        keys.events_key(queue),
        after,
    )
    return decode_entries(reply[0][1]) if reply else []


def wait_until_finished(
    queue: str,
    get_job: Callable[[str], Steps[Job | None]],
    job_id: str,
    timeout_s: float,
    block_s: float,
    clock: Callable[[], float] = time.monotonic,
) -> Steps[Any]:
    """The job's return value once it completed; JobFailedError once it failed;
    JobNotFoundError for an unknown id; TimeoutError after ``timeout_s``.

    Reads the stored state first (after noting the stream's position), so a job that
    finished before the call is never missed, then wakes on each of the queue's
    events (and every ``block_s``) to read it again.
    """
    deadline = clock() + timeout_s
    after = yield from events_last_id(queue)
    while True:
        job = yield from get_job(job_id)
        if job is None:
            raise JobNotFoundError(
                f"job {job_id!r} does not exist in queue {queue!r}: never added, removed, "
                "or trimmed by retention after it finished"
            )
        outcome = _outcome(job)
        if outcome is not None:
            return outcome()
        remaining = deadline - clock()
        if remaining <= 0:
            raise TimeoutError(f"job {job_id!r} is still {job.state} after {timeout_s} s")
        events = yield from read(queue, after, int(min(remaining, block_s) * 1000), 1000)
        if events:
            after = events[-1]["id"]


def _outcome(job: Job) -> Callable[[], Any] | None:
    if job.state == "completed":
        return lambda: job.returnvalue
    if job.state == "failed":

        def failed() -> Any:
            raise JobFailedError(job.id, job.failed_reason)

        return failed
    return None


class QueueEventsOps(RedisOps[C]):
    """A queue's event stream, read from any process. Events are kept (about
    EVENTS_MAX_LEN per queue), so a listener that starts late reads what it missed
    from any stream id (``last_id="0"``: from the oldest kept)."""

    def __init__(self, queue: str, *, client: C | None = None) -> None:
        super().__init__(client)
        self.queue = require_key("queue", queue)

    @operation
    def read(
        self, last_id: str = "$", block_s: float = 1.0, count: int = 100
    ) -> Steps[list[Event]]:
        """Up to ``count`` events after ``last_id`` (``$``: after the newest now),
        waiting up to ``block_s`` for the first one; [] when none came."""
        after = (yield from events_last_id(self.queue)) if last_id == "$" else last_id
        return (yield from read(self.queue, after, _block_ms(block_s), count))

    @operation
    def last_id(self) -> Steps[str]:
        """The id of the queue's newest event (``0-0`` when there is none)."""
        return (yield from events_last_id(self.queue))


class QueueEvents(QueueEventsOps[redis.Redis], SyncRunner):
    """``for event in QueueEvents("payment").listen(): ...``"""

    def listen(self, last_id: str = "$", block_s: float = 1.0) -> Iterator[Event]:
        """Every event after ``last_id``, as they come, for as long as iterated."""
        after = self.last_id() if last_id == "$" else last_id
        while True:
            for event in self.read(after, block_s):
                after = event["id"]
                yield event


class AsyncQueueEvents(QueueEventsOps[aioredis.Redis], AsyncRunner):
    """``async for event in QueueEvents("payment"): ...`` (csgoflip_jobs.aio)."""

    async def listen(self, last_id: str = "$", block_s: float = 1.0) -> AsyncIterator[Event]:
        """Every event after ``last_id``, as they come, for as long as iterated."""
        after = await self.last_id() if last_id == "$" else last_id
        while True:
            for event in await self.read(after, block_s):
                after = event["id"]
                yield event

    def __aiter__(self) -> AsyncIterator[Event]:
        """The events from now on (``listen()``)."""
        return self.listen()


def _block_ms(block_s: float) -> int:
    # A blocking read must end well within the client's command timeout.
    limit_s = get_settings().redis_command_timeout_s / 2
    return int(max(0.001, min(float(block_s), limit_s)) * 1000)

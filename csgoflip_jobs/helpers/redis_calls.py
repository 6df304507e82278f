"""Redis operations written once, for a sync or an asyncio client.

An operation is a generator of *steps*: it yields the Redis calls it needs
(:class:`Command`, :class:`ScriptCall`, or a :class:`Batch` of them sent as one
pipeline) and receives each reply back; what it returns is the operation's
result. It does no I/O itself, so the sync API (:func:`run`) and the asyncio
API drive the very same code: one source of truth for keys, arguments and the
decoding of replies.

    def get_job(job_id: str) -> Steps[Job | None]:
        record = yield Command("HGETALL", keys.job_key(job_id))
        return Job.from_record(job_id, record) if record else None
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import redis
from redis.commands.core import Script

from csgoflip_jobs.helpers.scripts import PipelineCall, queue_script, run_pipeline, run_script

T = TypeVar("T")


@dataclass(frozen=True, init=False)
class Command:
    """One plain Redis command, e.g. ``Command("HGETALL", key)``."""

    args: tuple[Any, ...]

    def __init__(self, *args: Any) -> None:
        object.__setattr__(self, "args", args)


@dataclass(frozen=True)
class ScriptCall:
    """One EVALSHA of a Lua script (loaded first should the server have lost it)."""

    script: Script
    keys: Sequence[Any]
    args: Sequence[Any]


@dataclass(frozen=True)
class Batch:
    """Calls sent as one pipeline (no transaction); the reply is the list of replies."""

    calls: Sequence[Command | ScriptCall]


Call = Command | ScriptCall | Batch
Steps = Generator[Call, Any, T]
"""An operation: yields calls, receives their replies, returns its result."""


def one(call: Call, decode: Callable[[Any], T]) -> Steps[T]:
    """The operation of a single call whose reply ``decode`` turns into the result."""
    reply = yield call
    return decode(reply)


def run(client: redis.Redis, steps: Steps[T]) -> T:
    """Drive ``steps`` on a sync client: send each call, hand back its reply."""
    try:
        call = next(steps)
        while True:
            call = steps.send(execute(client, call))
    except StopIteration as finished:
        return finished.value  # type: ignore[no-any-return]


def execute(client: redis.Redis, call: Call) -> Any:
    """Send one call on a sync client and return its reply."""
    if isinstance(call, Command):
        return cast(Any, client).execute_command(*call.args)
    if isinstance(call, ScriptCall):
        return run_script(client, call.script, list(call.keys), list(call.args))
    return run_pipeline(client, [_pipeline_call(c) for c in call.calls])


def _pipeline_call(call: Command | ScriptCall) -> PipelineCall:
    def add(pipe: redis.client.Pipeline) -> None:
        if isinstance(call, Command):
            cast(Any, pipe).execute_command(*call.args)
        else:
            queue_script(pipe, call.script, list(call.keys), list(call.args))

    return add

"""The Lua scripts in ``csgoflip_jobs/lua/``, as redis-py Script objects.

Each script is one round trip and one atomic step, so no crash between two
commands can lose or duplicate anything. Scripts touch keys they build from
their arguments (job hashes, Celery result keys): the platform targets a
single Redis node (7.0 or newer), not Redis Cluster.

Call a script with ``SCRIPT(keys=..., args=..., client=client)``. In pipelines
use :func:`queue_script` and :func:`run_pipeline`: redis-py's own pipeline
support for scripts costs an extra SCRIPT EXISTS round trip on every execute.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import Any

import redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError

# A Script only hashes its source with this client's encoding; every call passes
# the client (or pipeline) to run on, so this one never connects.
_ENCODING_ONLY = redis.Redis()


def _load(name: str) -> Script:
    source = resources.files(__package__).joinpath("lua", f"{name}.lua").read_text()
    return Script(_ENCODING_ONLY, source)


ENQUEUE = _load("enqueue")
PROMOTE = _load("promote")
DELIVER = _load("deliver")
START = _load("start")
FINISH = _load("finish")
REMOVE_FINISHED = _load("remove_finished")
SESSION_CREATE = _load("session_create")
SESSION_VALIDATE = _load("session_validate")
SESSION_INVALIDATE = _load("session_invalidate")
SESSION_INVALIDATE_ALL = _load("session_invalidate_all")
SESSION_PRUNE = _load("session_prune")
CACHE_STORE_AND_RELEASE = _load("cache_store_and_release")
COMPARE_AND_DELETE = _load("compare_and_delete")
RATE_LIMIT_HIT = _load("rate_limit_hit")
RATE_LIMIT_SLOT = _load("rate_limit_slot")
LOCK_ACQUIRE = _load("lock_acquire")
LOCK_RAISE_FENCES = _load("lock_raise_fences")
LOCK_EXTEND = _load("lock_extend")

PipelineCall = Callable[[redis.client.Pipeline], None]


def queue_script(
    pipe: redis.client.Pipeline, script: Script, keys: list[Any], args: list[Any]
) -> None:
    """Add an EVALSHA of ``script`` to ``pipe`` without redis-py's per-execute check."""
    pipe.evalsha(script.sha, len(keys), *keys, *args)


def run_pipeline(client: redis.Redis, calls: list[PipelineCall]) -> list[Any]:
    """Run ``calls`` in one round trip. On a server that lost its scripts (a restart),
    load them and re-run only the calls that failed with NOSCRIPT: they changed nothing."""
    replies = _execute(client, calls)
    missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if missing:
        for script in (ENQUEUE, PROMOTE, DELIVER, START, FINISH):
            client.script_load(script.script)
        for index, reply in zip(
            missing, _execute(client, [calls[i] for i in missing]), strict=True
        ):
            replies[index] = reply
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


def _execute(client: redis.Redis, calls: list[PipelineCall]) -> list[Any]:
    with client.pipeline(transaction=False) as pipe:
        for call in calls:
            call(pipe)
        return list(pipe.execute(raise_on_error=False))

"""Lua scripts as redis-py Script objects, and how to run them cheaply.

Each script is one round trip and one atomic step, so no crash between two
commands can lose or duplicate anything. Scripts touch keys they build from
their arguments (job hashes, Celery result keys): the platform targets a
single Redis node (7.0 or newer), not Redis Cluster.

:func:`load_script` reads ``<package>/lua/<name>.lua`` (the helpers' scripts
are below; the job engine's are in :mod:`csgoflip_jobs.engine.scripts`) and
remembers it, so a server that lost its script cache (a restart) gets every
known script back in one go.

Call a script with ``SCRIPT(keys=..., args=..., client=client)``. In pipelines
use :func:`queue_script` and :func:`run_pipeline`: redis-py's own pipeline
support for scripts costs an extra SCRIPT EXISTS round trip on every execute.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import Any, cast

import redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError

# A Script only hashes its source with this client's encoding; every call passes
# the client (or pipeline) to run on, so this one never connects.
_ENCODING_ONLY = redis.Redis()


_KNOWN: list[Script] = []
"""Every script loaded in this process, reloaded together after a NOSCRIPT."""


def load_script(package: str, name: str, libraries: tuple[str, ...] = ()) -> Script:
    """The script in ``<package>/lua/<name>.lua``, after the Lua functions of each
    ``<package>/lua/lib/<library>.lua`` (code several scripts share, written once)."""
    lua = resources.files(package).joinpath("lua")
    parts = [lua.joinpath("lib", f"{library}.lua").read_text() for library in libraries]
    script = Script(_ENCODING_ONLY, "\n".join([*parts, lua.joinpath(f"{name}.lua").read_text()]))
    _KNOWN.append(script)
    return script


def known_scripts() -> list[Script]:
    """Every script loaded in this process (to reload after a server lost them)."""
    return list(_KNOWN)


def _load(name: str) -> Script:
    return load_script(__package__ or "csgoflip_jobs.helpers", name)


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


def run_script(client: redis.Redis, script: Script, keys: list[Any], args: list[Any]) -> Any:
    """Run ``script`` in one round trip (loading it first when the server lost it).

    The helpers' hot paths use this rather than calling the Script: redis-py's
    ``Script.__call__`` and ``evalsha`` add a few microseconds of Python per call,
    and the helpers are measured against a bare GET.
    """
    execute = cast(Any, client).execute_command  # redis-py leaves it untyped
    try:
        return execute("EVALSHA", script.sha, len(keys), *keys, *args)
    except NoScriptError:
        client.script_load(script.script)
        return execute("EVALSHA", script.sha, len(keys), *keys, *args)


def queue_script(
    pipe: redis.client.Pipeline, script: Script, keys: list[Any], args: list[Any]
) -> None:
    """Add an EVALSHA of ``script`` to ``pipe`` without redis-py's per-execute check."""
    pipe.evalsha(script.sha, len(keys), *keys, *args)


def run_pipeline(
    client: redis.Redis, calls: list[PipelineCall], raise_on_error: bool = True
) -> list[Any]:
    """Run ``calls`` in one round trip. On a server that lost its scripts (a restart),
    load them and re-run only the calls that failed with NOSCRIPT: they changed nothing.
    The first error Redis answered is raised, or with ``raise_on_error=False`` left in
    the replies."""
    return _finish(client, calls, _execute(client, calls), raise_on_error)


def _finish(
    client: redis.Redis, calls: list[PipelineCall], replies: list[Any], raise_on_error: bool = True
) -> list[Any]:
    missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if missing:
        for script in _KNOWN:
            client.script_load(script.script)
        for index, reply in zip(
            missing, _execute(client, [calls[i] for i in missing]), strict=True
        ):
            replies[index] = reply
    if raise_on_error:
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
    return replies


def _execute(client: redis.Redis, calls: list[PipelineCall]) -> list[Any]:
    with client.pipeline(transaction=False) as pipe:
        for call in calls:
            call(pipe)
        return list(pipe.execute(raise_on_error=False))

"""Lua scripts as redis-py Script objects, and how to run them cheaply.

Each script is one round trip and one atomic step, so no crash between two
commands can lose or duplicate anything. Scripts touch keys they build from
their arguments (job hashes, Celery result keys): the platform targets a
single Redis node (7.0 or newer), not Redis Cluster.

:func:`load_script` reads ``<package>/lua/<name>.lua`` (the helpers' scripts
are below; the job engine's are in :mod:`csgoflip_jobs.engine.scripts`) and
remembers it, so a server that lost its script cache (a restart) gets every
known script back in one go.

Operations send scripts as :class:`~csgoflip_jobs.helpers.redis_calls.ScriptCall` s
(EVALSHA, loading every known script should the server answer NOSCRIPT); in pipelines
through :func:`queue_script`: redis-py's own pipeline support for scripts costs an
extra SCRIPT EXISTS round trip on every execute. The transport's hot path calls
:func:`run_script` directly.
"""

from __future__ import annotations

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

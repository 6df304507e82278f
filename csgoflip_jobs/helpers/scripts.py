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


def run_pipeline(client: redis.Redis, calls: list[PipelineCall]) -> list[Any]:
    """Run ``calls`` in one round trip. On a server that lost its scripts (a restart),
    load them and re-run only the calls that failed with NOSCRIPT: they changed nothing."""
    return _finish(client, calls, _execute(client, calls))


class StreamedPipeline:
    """A pipeline whose commands go out in chunks while the caller is still adding
    more, on one held connection; replies are read once, at :meth:`finish`.

    Redis works through one chunk while the caller builds the next, instead of
    idling until a whole bulk is built. NOSCRIPT is handled as in
    :func:`run_pipeline`. Call :meth:`finish` or :meth:`abandon`.
    """

    def __init__(self, client: redis.Redis, chunk: int) -> None:
        self._client = client
        self._chunk = chunk
        self._calls: list[PipelineCall] = []
        self._sent = 0
        self._connection: Any = None

    def __len__(self) -> int:
        """How many calls were added."""
        return len(self._calls)

    def add(self, call: PipelineCall) -> None:
        """Add one call; a full chunk is sent at once."""
        self._calls.append(call)
        if len(self._calls) - self._sent >= self._chunk:
            self._send()

    def finish(self, raise_on_error: bool = True) -> list[Any]:
        """Send the rest, read every reply; the replies, or raise the first error
        Redis answered (with ``raise_on_error=False``, errors stay in the replies).
        A lost connection raises either way."""
        try:
            if self._sent < len(self._calls):
                self._send()
            replies: list[Any] = []
            for _ in range(self._sent):
                try:
                    replies.append(self._connection.read_response())
                except redis.ResponseError as exc:
                    replies.append(exc)
        except BaseException:
            self.abandon()
            raise
        self._release()
        return _finish(self._client, self._calls, replies, raise_on_error)

    def abandon(self) -> None:
        """Drop the connection (its unread replies with it)."""
        if self._connection is not None:
            self._connection.disconnect()
            self._release()

    def _send(self) -> None:
        pipe = self._client.pipeline(transaction=False)
        for call in self._calls[self._sent :]:
            call(pipe)
        commands = [args for args, _options in pipe.command_stack]
        first = self._connection is None
        if first:
            self._connection = self._client.connection_pool.get_connection()
        # A health check PINGs and reads the next reply: only before the first chunk,
        # while no reply is pending (a long bulk could otherwise trigger one mid-way).
        self._connection.send_packed_command(
            self._connection.pack_commands(commands), check_health=first
        )
        self._sent = len(self._calls)

    def _release(self) -> None:
        if self._connection is not None:
            self._client.connection_pool.release(self._connection)
            self._connection = None


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

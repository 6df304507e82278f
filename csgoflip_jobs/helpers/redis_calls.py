"""Redis operations written once, run by a sync or an asyncio client.

An operation is a generator of *steps*: it yields what it needs done (a
:class:`Command`, a :class:`ScriptCall`, a :class:`Batch` of them sent as one
pipeline, a :class:`Sleep`, an :class:`Invoke` of a caller's function, or any of
those :class:`On` another client) and receives each reply back; what it returns
is the operation's result. It does no I/O itself, so the sync API (:func:`run`)
and the asyncio API (:func:`arun`) drive the very same code: one source of
truth for keys, script arguments and the decoding of replies.

    class SessionOps:
        @operation
        def get(self, session_id: str) -> Steps[bytes | None]:
            return (yield Command("GET", keys.session_key(session_id)))

    class SessionService(SessionOps, SyncRunner): ...        # .get(id) -> bytes | None
    class AsyncSessionService(SessionOps, AsyncRunner): ...  # await .get(id)

:class:`operation` gives each steps method the right form on each: a plain
method on a :class:`SyncRunner`, a coroutine method on an :class:`AsyncRunner`.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import Callable, Coroutine, Generator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, ClassVar, Concatenate, Generic, ParamSpec, TypeVar, cast, overload

import redis
import redis.asyncio as aioredis
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from csgoflip_jobs.helpers.clients import Role, async_clients, sync_clients
from csgoflip_jobs.helpers.connection import wrong_key_type
from csgoflip_jobs.helpers.scripts import known_scripts, queue_script

T = TypeVar("T")
C = TypeVar("C")
P = ParamSpec("P")


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
    """Calls sent as one pipeline (no transaction) on one connection; the reply is the
    list of replies. An error Redis answered for one call is raised, or, with
    ``raise_errors=False``, left in its place among the replies.

    A server that lost its scripts (restarted, or a replica just promoted) answers
    NOSCRIPT: the scripts are loaded and the refused calls run again (they changed
    nothing). ``confirm`` calls vouch for the whole batch (a PUBLISH and a WAIT for
    replicas, which counts its own connection's writes): they go last, and should any
    call run again, every script call runs again with them on one connection, so what
    they confirm covers every call (the scripts must be idempotent). Their replies end
    the list.
    """

    calls: Sequence[Command | ScriptCall]
    raise_errors: bool = True
    confirm: Sequence[Command] = ()

    @property
    def sent(self) -> list[Command | ScriptCall]:
        """Every call, in the order sent."""
        return [*self.calls, *self.confirm]

    def to_run_again(self, replies: Sequence[Any]) -> list[int]:
        """Positions to send again after loading the scripts (none: all done)."""
        refused = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if not refused or not self.confirm:
            return refused
        scripts = [i for i, call in enumerate(self.calls) if isinstance(call, ScriptCall)]
        return [*scripts, *range(len(self.calls), len(self.calls) + len(self.confirm))]

    def result(self, replies: list[Any]) -> list[Any]:
        """The batch's reply: ``replies``, or the first error when ``raise_errors``."""
        for reply in replies if self.raise_errors else ():
            if isinstance(reply, Exception):
                raise reply
        return replies


@dataclass(frozen=True)
class Sleep:
    """Wait ``seconds`` (the sync API blocks its thread; the asyncio API yields the loop)."""

    seconds: float


@dataclass(frozen=True)
class Invoke:
    """Call the caller's ``function()``; an awaitable result is awaited (asyncio API).
    The reply is its result; what it raises is thrown back into the operation."""

    function: Callable[[], Any]


@dataclass(frozen=True)
class Offload:
    """Blocking work (no Redis): the sync API calls ``function()``; the asyncio API
    runs it in a worker thread, so the event loop keeps running. The reply is its result."""

    function: Callable[[], Any]


@dataclass(frozen=True)
class On:
    """Send ``call`` on the runner's client number ``index`` (Redlock's masters);
    a Redis error comes back as the reply instead of being raised."""

    index: int
    call: Command | ScriptCall


Call = Command | ScriptCall | Batch | Sleep | Invoke | Offload | On
Steps = Generator[Call, Any, T]
"""An operation: yields calls, receives their replies, returns its result."""


def one(call: Call, decode: Callable[[Any], T]) -> Steps[T]:
    """The operation of a single call whose reply ``decode`` turns into the result."""
    reply = yield call
    return decode(reply)


# --- the services -----------------------------------------------------------------------
class RedisOps(Generic[C]):
    """Base of a service's shared steps: the client(s) it was given, if any; otherwise
    it uses the process's clients of its ``redis_role`` (:mod:`.clients`)."""

    redis_role: ClassVar[Role] = "queue"

    def __init__(self, client: C | Sequence[C] | None = None) -> None:
        if client is None:
            self._given: list[Any] | None = None
        else:
            self._given = list(client) if isinstance(client, Sequence) else [client]

    def _errors(self) -> AbstractContextManager[None]:
        """Where every operation runs: a service that maps Redis errors to its own
        (JobQueue: the BrokerError family) returns a context manager doing it."""
        return nullcontext()


class _Runner(Generic[C]):
    """What both runners share: the clients operations run on (``clients[0]`` unless
    :class:`On`), those given or else the process's clients of the ``redis_role``."""

    _given: list[Any] | None
    redis_role: ClassVar[Role]
    _errors: Callable[[], AbstractContextManager[None]]

    def _role_clients(self) -> Sequence[C]:
        raise NotImplementedError

    @property
    def clients(self) -> Sequence[C]:
        """The clients operations run on."""
        return self._given or self._role_clients()

    @property
    def client(self) -> C:
        """The (first) client operations run on."""
        return self.clients[0]


# --- the sync API ---------------------------------------------------------------------
class SyncRunner(_Runner[redis.Redis]):
    """Runs operations on sync redis-py clients."""

    def _role_clients(self) -> Sequence[redis.Redis]:
        return sync_clients(self.redis_role)

    def _bind(self, build: Callable[..., Steps[T]]) -> Callable[..., T]:
        @functools.wraps(build)
        def method(*args: Any, **kwargs: Any) -> T:
            with self._errors():
                return run(self.clients, build(self, *args, **kwargs))

        return method


def run(clients: redis.Redis | Sequence[redis.Redis], steps: Steps[T]) -> T:
    """Drive ``steps`` on sync clients: perform each call, hand back its reply."""
    targets = [clients] if isinstance(clients, redis.Redis) else list(clients)
    reply: Any = None
    failure: BaseException | None = None
    while True:
        try:
            call = steps.throw(failure) if failure is not None else steps.send(reply)
        except StopIteration as finished:
            return cast(T, finished.value)
        reply, failure = None, None
        try:
            reply = _execute(targets, call)
        except Exception as exc:
            if not isinstance(call, Invoke):
                raise
            failure = exc


def _execute(clients: list[redis.Redis], call: Call) -> Any:
    if isinstance(call, Sleep):
        time.sleep(call.seconds)
        return None
    if isinstance(call, Invoke | Offload):
        return call.function()
    if isinstance(call, On):
        try:
            return _execute_on(clients[call.index], call.call)
        except redis.RedisError as exc:
            return exc
    return _execute_on(clients[0], call)


def _execute_on(client: redis.Redis, call: Command | ScriptCall | Batch) -> Any:
    if not isinstance(call, Batch):
        try:
            if isinstance(call, Command):
                return cast(Any, client).execute_command(*call.args)
            return _evalsha(cast(Any, client).execute_command, call)
        except redis.ResponseError as exc:
            raise _named(call, exc) or exc from None  # the named one quotes Redis's
    sent = call.sent
    replies = _pipeline(client, sent)
    again = call.to_run_again(replies)
    if again:
        for script in known_scripts():
            client.script_load(script.script)
        for index, reply in zip(again, _pipeline(client, [sent[i] for i in again]), strict=True):
            replies[index] = reply
    return call.result(replies)


def _evalsha(execute: Callable[..., Any], call: ScriptCall) -> Any:
    try:
        return execute("EVALSHA", call.script.sha, len(call.keys), *call.keys, *call.args)
    except NoScriptError:
        execute("SCRIPT", "LOAD", call.script.script)
        return execute("EVALSHA", call.script.sha, len(call.keys), *call.keys, *call.args)


def _pipeline(client: redis.Redis, calls: Sequence[Command | ScriptCall]) -> list[Any]:
    with client.pipeline(transaction=False) as pipe:
        for call in calls:
            if isinstance(call, Command):
                cast(Any, pipe).execute_command(*call.args)
            else:
                queue_script(pipe, call.script, list(call.keys), list(call.args))
        replies = pipe.execute(raise_on_error=False)
        return [_named(c, r) or r for c, r in zip(calls, replies, strict=True)]


def _named(call: Command | ScriptCall, reply: Any) -> Exception | None:
    """For a WRONGTYPE error, the error naming the call's keys (WrongKeyTypeError)."""
    keys = call.keys if isinstance(call, ScriptCall) else call.args[1:2]
    return wrong_key_type(reply, keys) if isinstance(reply, Exception) else None


# --- the asyncio API --------------------------------------------------------------------
class AsyncRunner(_Runner[aioredis.Redis]):
    """Runs operations on redis.asyncio clients (by default the running loop's)."""

    def _role_clients(self) -> Sequence[aioredis.Redis]:
        return async_clients(self.redis_role)

    def _bind(self, build: Callable[..., Steps[T]]) -> Callable[..., Coroutine[Any, Any, T]]:
        @functools.wraps(build)
        async def method(*args: Any, **kwargs: Any) -> T:
            with self._errors():
                return await arun(self.clients, build(self, *args, **kwargs))

        return method


async def arun(clients: aioredis.Redis | Sequence[aioredis.Redis], steps: Steps[T]) -> T:
    """Drive ``steps`` on redis.asyncio clients, as :func:`run` does."""
    targets = [clients] if isinstance(clients, aioredis.Redis) else list(clients)
    reply: Any = None
    failure: BaseException | None = None
    while True:
        try:
            call = steps.throw(failure) if failure is not None else steps.send(reply)
        except StopIteration as finished:
            return cast(T, finished.value)
        reply, failure = None, None
        try:
            reply = await _aexecute(targets, call)
        except Exception as exc:
            if not isinstance(call, Invoke):
                raise
            failure = exc


async def _aexecute(clients: list[aioredis.Redis], call: Call) -> Any:
    if isinstance(call, Sleep):
        await asyncio.sleep(call.seconds)
        return None
    if isinstance(call, Invoke):
        result = call.function()
        return await result if inspect.isawaitable(result) else result
    if isinstance(call, Offload):
        return await asyncio.to_thread(call.function)
    if isinstance(call, On):
        try:
            return await _aexecute_on(clients[call.index], call.call)
        except redis.RedisError as exc:
            return exc
    return await _aexecute_on(clients[0], call)


async def _aexecute_on(client: aioredis.Redis, call: Command | ScriptCall | Batch) -> Any:
    if not isinstance(call, Batch):
        try:
            if isinstance(call, Command):
                return await cast(Any, client).execute_command(*call.args)
            return await _aevalsha(client, call)
        except redis.ResponseError as exc:
            raise _named(call, exc) or exc from None  # the named one quotes Redis's
    sent = call.sent
    replies = await _apipeline(client, sent)
    again = call.to_run_again(replies)
    if again:
        for script in known_scripts():
            await cast(Any, client).execute_command("SCRIPT", "LOAD", script.script)
        rerun = await _apipeline(client, [sent[i] for i in again])
        for index, reply in zip(again, rerun, strict=True):
            replies[index] = reply
    return call.result(replies)


async def _aevalsha(client: aioredis.Redis, call: ScriptCall) -> Any:
    evalsha = cast(Any, client).evalsha
    try:
        return await evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
    except NoScriptError:
        await cast(Any, client).execute_command("SCRIPT", "LOAD", call.script.script)
        return await evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)


async def _apipeline(client: aioredis.Redis, calls: Sequence[Command | ScriptCall]) -> list[Any]:
    async with client.pipeline(transaction=False) as pipe:
        for call in calls:
            if isinstance(call, Command):
                pipe.execute_command(*call.args)
            else:
                pipe.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
        replies = await pipe.execute(raise_on_error=False)
        return [_named(c, r) or r for c, r in zip(calls, replies, strict=True)]


# --- one definition, both APIs ---------------------------------------------------------
class operation(Generic[P, T]):
    """A steps method that is a plain method on a :class:`SyncRunner` and a coroutine
    method on an :class:`AsyncRunner`, with the same parameters, result and docstring."""

    def __init__(self, build: Callable[Concatenate[Any, P], Steps[T]]) -> None:
        self.build = build
        functools.update_wrapper(cast(Any, self), build)

    @overload
    def __get__(self, obj: None, owner: type) -> operation[P, T]: ...

    @overload
    def __get__(self, obj: SyncRunner, owner: type) -> Callable[P, T]: ...

    @overload
    def __get__(self, obj: AsyncRunner, owner: type) -> Callable[P, Coroutine[Any, Any, T]]: ...

    def __get__(self, obj: Any, owner: type) -> Any:
        if obj is None:
            return self
        bound = obj._bind(self.build)
        # Cached on the instance: the next lookup skips this descriptor.
        obj.__dict__[self.build.__name__] = bound
        return bound

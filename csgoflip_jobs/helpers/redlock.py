"""``RedlockService``: the Redlock algorithm over N independent Redis masters, with
fencing tokens.

A lock is held when a quorum (N/2+1) of masters set it within its validity
(duration minus elapsed time and 1 % clock drift); 10 retries 200 ms +- 200 ms
apart by default; ``lock()`` extends it 500 ms before expiry for as long as its
block runs, and reports a lost lock through its signal.

Fencing: every acquisition returns, per resource, a token that strictly
increases, so a store can refuse a write carrying a token lower than one it
has seen (a holder paused past its lock's expiry). Each master keeps a counter
per resource, advanced to ``max(counter + 1, server time in µs)`` so tokens keep
growing even if a master loses its data. With several masters the winner
raises the counters of its quorum to the token it got before the lock is
valid; any later quorum overlaps that one, so later tokens are higher.

:class:`RedlockService` is the sync API (its block's lock is extended by a thread),
:class:`AsyncRedlockService` the asyncio one (``async with redlock.lock(...)``,
extended by a task); both run the steps of :class:`RedlockOps`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, replace
from functools import cache
from typing import Any, ClassVar, TypeVar

import redis
import redis.asyncio as aioredis
from redis.commands.core import Script

from csgoflip_jobs import keys
from csgoflip_jobs.helpers import scripts as lua_scripts
from csgoflip_jobs.helpers.arguments import require_callable, require_key, require_positive
from csgoflip_jobs.helpers.clients import Role
from csgoflip_jobs.helpers.errors import LockError, LockLostError
from csgoflip_jobs.helpers.redis_calls import (
    AsyncRunner,
    C,
    On,
    RedisOps,
    ScriptCall,
    Sleep,
    Steps,
    SyncRunner,
    operation,
)

# Redlock's defaults (the constructor's): clock drift 1 % of the lock's life, 10
# retries 200 ms +- 200 ms apart, extension 500 ms before expiry.
REDLOCK_DRIFT_FACTOR = 0.01
REDLOCK_RETRY_COUNT = 10
REDLOCK_RETRY_DELAY_MS = 200
REDLOCK_RETRY_JITTER_MS = 200
REDLOCK_AUTOMATIC_EXTENSION_THRESHOLD_MS = 500

FENCE_TTL_S = 7 * 24 * 3600
"""A resource's fencing counter expires this long after its last lock (one per user and
withdrawal would otherwise stay for ever in a noeviction Redis). Safe: a counter found
missing restarts from the server clock in microseconds, past every token it gave."""

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Lock:
    """A held lock: its resources, its secret value, its validity and fencing tokens."""

    resources: tuple[str, ...]
    value: str
    expires_at: float
    """``time.monotonic()`` after which the lock may be held by someone else."""
    fencing_tokens: dict[str, int]
    attempts: int

    @property
    def fencing_token(self) -> int:
        """The token of the first resource (the usual single-resource case)."""
        return self.fencing_tokens[self.resources[0]]

    @property
    def remaining_ms(self) -> float:
        """Milliseconds of validity left (negative once expired)."""
        return (self.expires_at - time.monotonic()) * 1000


class LockSignal:
    """What ``lock()`` and ``using`` hand their block: the current lock and whether it
    was lost."""

    def __init__(self, lock: Lock) -> None:
        self.lock = lock
        self.error: LockError | None = None

    @property
    def aborted(self) -> bool:
        """True once the lock could not be extended; stop writing."""
        return self.error is not None

    @property
    def fencing_token(self) -> int:
        """The lock's fencing token, to pass along with every guarded write."""
        return self.lock.fencing_token

    def check(self) -> None:
        """Raise LockLostError if the lock was lost; call before each guarded step."""
        if self.error is not None:
            raise LockLostError(str(self.error)) from self.error

    def next_extension_s(self, threshold_ms: float) -> float:
        """Seconds until the lock is due for extension."""
        return max(0.0, (self.lock.remaining_ms - threshold_ms) / 1000)


class RedlockOps(RedisOps[C]):
    """The steps of acquire, extend and release, shared by the sync and asyncio APIs."""

    redis_role: ClassVar[Role] = "locks"
    clients: Sequence[Any]

    def __init__(
        self,
        clients: Sequence[C] | None = None,
        *,
        drift_factor: float = REDLOCK_DRIFT_FACTOR,
        retry_count: int = REDLOCK_RETRY_COUNT,
        retry_delay_ms: int = REDLOCK_RETRY_DELAY_MS,
        retry_jitter_ms: int = REDLOCK_RETRY_JITTER_MS,
        automatic_extension_threshold_ms: int = REDLOCK_AUTOMATIC_EXTENSION_THRESHOLD_MS,
    ) -> None:
        if clients is not None and not clients:
            raise ValueError("RedlockService needs at least one Redis master")
        if not 0 <= drift_factor < 1 or retry_count < 0 or retry_delay_ms < 0:
            raise ValueError("drift_factor must be in [0, 1); retries and delays >= 0")
        super().__init__(clients)
        self.drift_factor = drift_factor
        self.retry_count = retry_count
        self.retry_delay_ms = retry_delay_ms
        self.retry_jitter_ms = retry_jitter_ms
        self.automatic_extension_threshold_ms = automatic_extension_threshold_ms

    @property
    def quorum(self) -> int:
        """Masters that must agree: N/2 + 1."""
        return len(self.clients) // 2 + 1

    @operation
    def acquire(self, resources: str | Sequence[str], duration_ms: int) -> Steps[Lock]:
        """Lock every resource for ``duration_ms``; retry, then raise LockError."""
        names = _resources(resources)
        require_positive("duration_ms", duration_ms)
        value = os.urandom(16).hex()
        failures: list[str] = []
        for attempt in range(1, self.retry_count + 2):
            lock = yield from self._try_acquire(names, value, duration_ms, attempt, failures)
            if lock is not None:
                return lock
            if attempt <= self.retry_count:
                jitter = random.uniform(-self.retry_jitter_ms, self.retry_jitter_ms)
                yield Sleep(max(0.0, self.retry_delay_ms + jitter) / 1000)
        raise LockError(
            f"could not lock {', '.join(names)}: {self.quorum} of {len(self.clients)} masters "
            f"needed, {self.retry_count + 1} attempts failed (last: {failures[-1]})"
        )

    @operation
    def extend(self, lock: Lock, duration_ms: int) -> Steps[Lock]:
        """Extend a lock we hold to ``duration_ms`` from now; LockError if not ours anymore."""
        require_positive("duration_ms", duration_ms)
        start = time.monotonic()
        replies = yield from self._on_each(
            lua_scripts.LOCK_EXTEND, _lock_keys(lock.resources), [lock.value, duration_ms]
        )
        agreed = sum(1 for reply in replies if reply)
        validity_s = self._validity_s(duration_ms, start)
        if agreed < self.quorum or validity_s <= 0:
            raise LockError(
                f"could not extend the lock on {', '.join(lock.resources)}: "
                f"{agreed} of {len(self.clients)} masters agreed"
            )
        return replace(lock, expires_at=time.monotonic() + validity_s)

    @operation
    def release(self, lock: Lock) -> Steps[int]:
        """Release a lock we hold; returns on how many masters it was still ours."""
        replies = yield from self._on_each(
            lua_scripts.COMPARE_AND_DELETE, _lock_keys(lock.resources), [lock.value]
        )
        return sum(int(reply or 0) for reply in replies)

    def _on_each(self, script: Script, script_keys: list[str], args: list[Any]) -> Steps[list[Any]]:
        """Run ``script`` on every master in turn; a master that fails answers None."""
        replies = []
        for index in range(len(self.clients)):
            reply = yield On(index, ScriptCall(script, script_keys, args))
            if isinstance(reply, redis.RedisError):
                log.debug("lock master %d: %s", index, reply)
                reply = None
            replies.append(reply)
        return replies

    def _try_acquire(
        self,
        names: tuple[str, ...],
        value: str,
        duration_ms: int,
        attempt: int,
        failures: list[str],
    ) -> Steps[Lock | None]:
        start = time.monotonic()
        script_keys = _lock_keys(names) + [keys.fence_key(n) for n in names]
        args = [value, duration_ms, FENCE_TTL_S * 1000]
        replies = yield from self._on_each(lua_scripts.LOCK_ACQUIRE, script_keys, args)
        won = [(i, [int(t) for t in tokens]) for i, tokens in enumerate(replies) if tokens]
        fencing: dict[str, int] = {}
        if won:
            fencing = {n: max(tokens[i] for _c, tokens in won) for i, n in enumerate(names)}
        if len(won) >= self.quorum and len(self.clients) > 1:
            fences = [keys.fence_key(n) for n in names]
            raised = 0
            for index, _tokens in won:
                tokens = [fencing[n] for n in names]
                call = ScriptCall(
                    lua_scripts.LOCK_RAISE_FENCES, fences, [FENCE_TTL_S * 1000, *tokens]
                )
                reply = yield On(index, call)
                raised += 0 if isinstance(reply, redis.RedisError) or reply is None else 1
            if raised < self.quorum:
                won = []
        validity_s = self._validity_s(duration_ms, start)
        if len(won) >= self.quorum and validity_s > 0:
            return Lock(names, value, time.monotonic() + validity_s, fencing, attempt)
        failures.append(f"{len(won)} of {len(self.clients)} masters locked")
        for index, _tokens in won:
            yield On(index, ScriptCall(lua_scripts.COMPARE_AND_DELETE, _lock_keys(names), [value]))
        return None

    def _validity_s(self, duration_ms: int, start: float) -> float:
        drift_ms = duration_ms * self.drift_factor + 2
        elapsed_ms = (time.monotonic() - start) * 1000
        return (duration_ms - elapsed_ms - drift_ms) / 1000

    def _threshold_ms(self, duration_ms: int) -> float:
        return min(self.automatic_extension_threshold_ms, duration_ms / 2)


class RedlockService(RedlockOps[redis.Redis], SyncRunner):
    """acquire / extend / release / lock / using over the masters of REDLOCK_URLS."""

    def using(
        self, resources: str | Sequence[str], duration_ms: int, routine: Callable[[LockSignal], T]
    ) -> T:
        """Run ``routine(signal)`` under the lock, extending it for as long as it runs."""
        require_callable("routine", routine)
        with self.lock(resources, duration_ms) as signal:
            return routine(signal)

    @contextmanager
    def lock(self, resources: str | Sequence[str], duration_ms: int) -> Iterator[LockSignal]:
        """``with redlock.lock("user:1:balance", 5000) as signal:`` (extended by a thread)."""
        signal = LockSignal(self.acquire(resources, duration_ms))
        stop = threading.Event()
        extender = threading.Thread(
            target=self._keep_extended, args=(signal, duration_ms, stop), name="redlock-extender"
        )
        extender.daemon = True
        extender.start()
        try:
            yield signal
        finally:
            stop.set()
            extender.join()
            self.release(signal.lock)

    def _keep_extended(self, signal: LockSignal, duration_ms: int, stop: threading.Event) -> None:
        threshold_ms = self._threshold_ms(duration_ms)
        while not stop.wait(signal.next_extension_s(threshold_ms)):
            try:
                signal.lock = self.extend(signal.lock, duration_ms)
            except LockError as exc:
                log.warning("lock lost: %s", exc)
                signal.error = exc
                return


class AsyncRedlockService(RedlockOps[aioredis.Redis], AsyncRunner):
    """:class:`RedlockService` for asyncio: ``async with redlock.lock(resource, ms) as
    signal:``, extended by a task while the block runs."""

    async def using(
        self,
        resources: str | Sequence[str],
        duration_ms: int,
        routine: Callable[[LockSignal], Awaitable[T]],
    ) -> T:
        """Await ``routine(signal)`` under the lock, extending it for as long as it runs."""
        require_callable("routine", routine)
        async with self.lock(resources, duration_ms) as signal:
            return await routine(signal)

    @asynccontextmanager
    async def lock(
        self, resources: str | Sequence[str], duration_ms: int
    ) -> AsyncIterator[LockSignal]:
        """Hold the lock for the block; released when it ends (also when it is
        cancelled); should the release fail, the lock expires after ``duration_ms``."""
        signal = LockSignal(await self.acquire(resources, duration_ms))
        extender = asyncio.create_task(self._keep_extended(signal, duration_ms))
        try:
            yield signal
        finally:
            extender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await extender
            await asyncio.shield(self.release(signal.lock))

    async def _keep_extended(self, signal: LockSignal, duration_ms: int) -> None:
        threshold_ms = self._threshold_ms(duration_ms)
        while True:
            await asyncio.sleep(signal.next_extension_s(threshold_ms))
            try:
                signal.lock = await self.extend(signal.lock, duration_ms)
            except LockError as exc:
                log.warning("lock lost: %s", exc)
                signal.error = exc
                return


@cache
def default_redlock() -> RedlockService:
    """The process-wide RedlockService over REDLOCK_URLS (its clients are thread-safe)."""
    return RedlockService()


def _lock_keys(names: Sequence[str]) -> list[str]:
    return [keys.lock_key(name) for name in names]


def _resources(resources: str | Sequence[str]) -> tuple[str, ...]:
    names = (resources,) if isinstance(resources, str) else tuple(resources)
    if not names:
        raise ValueError("resources must name at least one resource")
    return tuple(require_key("resource", name) for name in names)

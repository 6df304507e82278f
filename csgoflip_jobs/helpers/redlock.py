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
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cache
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.retry import Retry

from csgoflip_jobs import keys
from csgoflip_jobs.helpers import scripts as lua_scripts
from csgoflip_jobs.helpers.arguments import require_callable, require_key, require_positive
from csgoflip_jobs.helpers.connection import make_client
from csgoflip_jobs.helpers.errors import LockError, LockLostError
from csgoflip_jobs.settings import get_settings

# Redlock's defaults (the constructor's): clock drift 1 % of the lock's life, 10
# retries 200 ms +- 200 ms apart, extension 500 ms before expiry.
REDLOCK_DRIFT_FACTOR = 0.01
REDLOCK_RETRY_COUNT = 10
REDLOCK_RETRY_DELAY_MS = 200
REDLOCK_RETRY_JITTER_MS = 200
REDLOCK_AUTOMATIC_EXTENSION_THRESHOLD_MS = 500

REDLOCK_MASTER_TIMEOUT_S = 0.5
"""A lock master that does not answer within this counts as failed for that attempt."""

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
    """What ``using`` hands its routine: the current lock and whether it was lost."""

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


class RedlockService:
    """acquire / extend / release / using over the masters of REDLOCK_URLS."""

    def __init__(
        self,
        clients: Sequence[redis.Redis] | None = None,
        *,
        drift_factor: float = REDLOCK_DRIFT_FACTOR,
        retry_count: int = REDLOCK_RETRY_COUNT,
        retry_delay_ms: int = REDLOCK_RETRY_DELAY_MS,
        retry_jitter_ms: int = REDLOCK_RETRY_JITTER_MS,
        automatic_extension_threshold_ms: int = REDLOCK_AUTOMATIC_EXTENSION_THRESHOLD_MS,
    ) -> None:
        self.clients = list(clients) if clients is not None else _default_clients()
        if not self.clients:
            raise ValueError("RedlockService needs at least one Redis master")
        if not 0 <= drift_factor < 1 or retry_count < 0 or retry_delay_ms < 0:
            raise ValueError("drift_factor must be in [0, 1); retries and delays >= 0")
        self.drift_factor = drift_factor
        self.retry_count = retry_count
        self.retry_delay_ms = retry_delay_ms
        self.retry_jitter_ms = retry_jitter_ms
        self.automatic_extension_threshold_ms = automatic_extension_threshold_ms

    @property
    def quorum(self) -> int:
        """Masters that must agree: N/2 + 1."""
        return len(self.clients) // 2 + 1

    def acquire(self, resources: str | Sequence[str], duration_ms: int) -> Lock:
        """Lock every resource for ``duration_ms``; retry, then raise LockError."""
        names = _resources(resources)
        require_positive("duration_ms", duration_ms)
        value = os.urandom(16).hex()
        failures: list[str] = []
        for attempt in range(1, self.retry_count + 2):
            lock = self._try_acquire(names, value, duration_ms, attempt, failures)
            if lock is not None:
                return lock
            if attempt <= self.retry_count:
                time.sleep(self._retry_wait_s())
        raise LockError(
            f"could not lock {', '.join(names)}: {self.quorum} of {len(self.clients)} masters "
            f"needed, {self.retry_count + 1} attempts failed (last: {failures[-1]})"
        )

    def extend(self, lock: Lock, duration_ms: int) -> Lock:
        """Extend a lock we hold to ``duration_ms`` from now; LockError if not ours anymore."""
        require_positive("duration_ms", duration_ms)
        start = time.monotonic()
        agreed = sum(
            1
            for client in self.clients
            if self._call(
                client, lua_scripts.LOCK_EXTEND, list(lock.resources), [lock.value, duration_ms]
            )
        )
        validity_s = self._validity_s(duration_ms, start)
        if agreed < self.quorum or validity_s <= 0:
            raise LockError(
                f"could not extend the lock on {', '.join(lock.resources)}: "
                f"{agreed} of {len(self.clients)} masters agreed"
            )
        return replace(lock, expires_at=time.monotonic() + validity_s)

    def release(self, lock: Lock) -> int:
        """Release a lock we hold; returns on how many masters it was still ours."""
        released = 0
        for client in self.clients:
            released += int(
                self._call(
                    client, lua_scripts.COMPARE_AND_DELETE, list(lock.resources), [lock.value]
                )
                or 0
            )
        return released

    def using(
        self, resources: str | Sequence[str], duration_ms: int, routine: Callable[[LockSignal], T]
    ) -> T:
        """Run ``routine(signal)`` under the lock, extending it for as long as it runs."""
        require_callable("routine", routine)
        with self.lock(resources, duration_ms) as signal:
            return routine(signal)

    @contextmanager
    def lock(self, resources: str | Sequence[str], duration_ms: int) -> Iterator[LockSignal]:
        """``with redlock.lock("user:1:balance", 5000) as signal:`` (auto-extended)."""
        signal = LockSignal(self.acquire(resources, duration_ms))
        stop = threading.Event()
        extender = threading.Thread(
            target=self._keep_extended,
            args=(signal, duration_ms, stop),
            name="redlock-extender",
            daemon=True,
        )
        extender.start()
        try:
            yield signal
        finally:
            stop.set()
            extender.join()
            self.release(signal.lock)

    def _keep_extended(self, signal: LockSignal, duration_ms: int, stop: threading.Event) -> None:
        threshold_ms = min(self.automatic_extension_threshold_ms, duration_ms / 2)
        while not stop.wait(max(0.0, (signal.lock.remaining_ms - threshold_ms) / 1000)):
            try:
                signal.lock = self.extend(signal.lock, duration_ms)
            except LockError as exc:
                log.warning("lock lost: %s", exc)
                signal.error = exc
                return

    def _try_acquire(
        self,
        names: tuple[str, ...],
        value: str,
        duration_ms: int,
        attempt: int,
        failures: list[str],
    ) -> Lock | None:
        start = time.monotonic()
        script_keys = [keys.lock_key(n) for n in names] + [keys.fence_key(n) for n in names]
        won: list[tuple[redis.Redis, list[int]]] = []
        for client in self.clients:
            tokens = self._call(client, lua_scripts.LOCK_ACQUIRE, script_keys, [value, duration_ms])
            if tokens:
                won.append((client, [int(t) for t in tokens]))
        fencing = (
            {name: max(tokens[i] for _c, tokens in won) for i, name in enumerate(names)}
            if won
            else {}
        )
        if len(won) >= self.quorum and len(self.clients) > 1:
            raised = sum(
                1
                for client, _t in won
                if self._call(
                    client,
                    lua_scripts.LOCK_RAISE_FENCES,
                    [keys.fence_key(n) for n in names],
                    [fencing[n] for n in names],
                )
                is not None
            )
            if raised < self.quorum:
                won = won[:0]
        validity_s = self._validity_s(duration_ms, start)
        if len(won) >= self.quorum and validity_s > 0:
            return Lock(names, value, time.monotonic() + validity_s, fencing, attempt)
        failures.append(f"{len(won)} of {len(self.clients)} masters locked")
        for client, _tokens in won:
            self._call(client, lua_scripts.COMPARE_AND_DELETE, list(names), [value])
        return None

    def _validity_s(self, duration_ms: int, start: float) -> float:
        drift_ms = duration_ms * self.drift_factor + 2
        elapsed_ms = (time.monotonic() - start) * 1000
        return (duration_ms - elapsed_ms - drift_ms) / 1000

    def _retry_wait_s(self) -> float:
        jitter = random.uniform(-self.retry_jitter_ms, self.retry_jitter_ms)
        return max(0.0, self.retry_delay_ms + jitter) / 1000

    @staticmethod
    def _call(client: redis.Redis, script: Script, script_keys: list[str], args: list[Any]) -> Any:
        """Run a script on one master; a master that fails counts as a 'no'."""
        try:
            return lua_scripts.run_script(client, script, script_keys, args)
        except redis.RedisError as exc:
            log.debug("lock master %s: %s", client, exc)
            return None


def lock_master_client(url: str) -> redis.Redis:
    """A client for one lock master. Redlock retries by itself, so a master that is
    down must fail fast: no client-side retries, short timeouts."""
    return make_client(
        url,
        socket_connect_timeout=REDLOCK_MASTER_TIMEOUT_S,
        socket_timeout=REDLOCK_MASTER_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),
    )


@cache
def default_redlock() -> RedlockService:
    """The process-wide RedlockService over REDLOCK_URLS (its clients are thread-safe)."""
    return RedlockService()


def _default_clients() -> list[redis.Redis]:
    return [lock_master_client(url) for url in get_settings().redlock_url_list]


def _resources(resources: str | Sequence[str]) -> tuple[str, ...]:
    names = (resources,) if isinstance(resources, str) else tuple(resources)
    if not names:
        raise ValueError("resources must name at least one resource")
    return tuple(require_key("resource", name) for name in names)

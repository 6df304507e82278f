"""BullMQ job options: validation, defaults and backoff arithmetic.

Names and units are BullMQ's: ``delay`` and backoff ``delay`` in milliseconds,
``attempts`` counts every try (3 means one try and two retries).
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from csgoflip_jobs.engine.errors import JobOptionsError
from csgoflip_jobs.helpers.arguments import whole_number

# BullMQ's job defaults: 3 tries in all, waits of 1 s then 2 s, the newest 100
# completed and 1000 failed jobs of each queue kept.
DEFAULT_ATTEMPTS = 3
DEFAULT_BACKOFF_TYPE = "exponential"
DEFAULT_BACKOFF_DELAY_MS = 1000
DEFAULT_KEEP_COMPLETED = 100
DEFAULT_KEEP_FAILED = 1000

MAX_PRIORITY_LEVEL = 9
"""kombu's Redis transport keeps one list per level 0-9; 0 is popped first."""

MAX_PRIORITY = 2**21
"""Highest BullMQ priority (BullMQ's own bound; 1 is the highest priority, 0 none)."""

MAX_DELAY_MS = 10 * 365 * 24 * 3600 * 1000
"""Longest delay, backoff or deferral: 10 years in ms (Redis scores stay exact)."""

MAX_ATTEMPTS = 1000
"""Most tries one job may be given."""

MAX_JOB_ID_CHARS = 256
"""Longest job id; any printable characters but spaces (quotes, slashes and non-ASCII
letters included)."""

MAX_KEEP = 1_000_000
"""Most finished jobs ``remove_on_complete`` / ``remove_on_fail`` may keep per queue."""

BackoffType = Literal["fixed", "exponential"]
KeepOption = bool | int


@dataclass(frozen=True)
class Backoff:
    """Wait between tries: ``fixed`` waits ``delay_ms``; ``exponential`` doubles it each try."""

    type: BackoffType = DEFAULT_BACKOFF_TYPE  # type: ignore[assignment]
    delay_ms: int = DEFAULT_BACKOFF_DELAY_MS

    def delay_for(self, attempts_made: int) -> int:
        """Milliseconds to wait after try number ``attempts_made`` (1-based) failed (at
        most MAX_DELAY_MS)."""
        if self.type == "fixed":
            return self.delay_ms
        doubled: int = self.delay_ms << max(attempts_made - 1, 0)
        return min(doubled, MAX_DELAY_MS)

    def as_dict(self) -> dict[str, Any]:
        """BullMQ's JSON shape: ``{"type": ..., "delay": ms}``."""
        return {"type": self.type, "delay": self.delay_ms}

    @classmethod
    def parse(cls, value: object) -> Backoff:
        """Accept BullMQ's forms: None (default), a number of ms (fixed), or {type, delay}."""
        if value is None:
            return cls()
        if isinstance(value, Backoff):
            return value
        if _is_int(value):
            return cls("fixed", require_delay_ms("backoff", value))
        if isinstance(value, Mapping):
            kind = value.get("type", DEFAULT_BACKOFF_TYPE)
            if kind not in ("fixed", "exponential"):
                raise JobOptionsError(
                    f"backoff type must be 'fixed' or 'exponential', not {kind!r}"
                )
            delay = require_delay_ms("backoff delay", value.get("delay", DEFAULT_BACKOFF_DELAY_MS))
            return cls(kind, delay)
        raise JobOptionsError(f"backoff must be milliseconds or {{type, delay}}, not {value!r}")


@dataclass(frozen=True)
class JobOptions:
    """One job's validated options."""

    delay_ms: int = 0
    priority: int = 0
    attempts: int = DEFAULT_ATTEMPTS
    backoff: Backoff = Backoff()
    remove_on_complete: KeepOption | None = None
    remove_on_fail: KeepOption | None = None
    job_id: str | None = None

    @property
    def priority_level(self) -> int:
        """kombu priority list 0-9 of this job (see :func:`priority_level`)."""
        return priority_level(self.priority)

    def header(self) -> dict[str, Any]:
        """The message header a worker reads: this try's number and the retry policy."""
        opts: dict[str, Any] = {
            "attempts": self.attempts,
            "backoff": self.backoff.as_dict(),
        }
        for name in ("remove_on_complete", "remove_on_fail"):
            if getattr(self, name) is not None:
                opts[name] = getattr(self, name)
        if self.delay_ms:
            opts["delay"] = self.delay_ms
        if self.priority:
            opts["priority"] = self.priority
        return {
            "attempt": 1,
            "attempts": self.attempts,
            "backoff": self.backoff.as_dict(),
            "delay": self.delay_ms,
            "opts": opts,
        }


def priority_level(priority: int) -> int:
    """kombu priority list 0-9: no priority is 0 (popped first), BullMQ p is min(p, 9)."""
    return min(priority, MAX_PRIORITY_LEVEL)


def parse_options(
    *,
    delay: object = None,
    priority: object = None,
    attempts: object = None,
    backoff: object = None,
    remove_on_complete: object = None,
    remove_on_fail: object = None,
    job_id: object = None,
) -> JobOptions:
    """Validate BullMQ options; raise JobOptionsError naming the first bad one and its
    bounds (MAX_DELAY_MS, MAX_PRIORITY, MAX_ATTEMPTS, MAX_KEEP)."""
    return JobOptions(
        delay_ms=0 if delay is None else require_delay_ms("delay", delay),
        priority=0 if priority is None else require_priority(priority),
        attempts=DEFAULT_ATTEMPTS
        if attempts is None
        else _bounded("attempts", attempts, 1, MAX_ATTEMPTS),
        backoff=Backoff.parse(backoff),
        remove_on_complete=_keep_option("remove_on_complete", remove_on_complete),
        remove_on_fail=_keep_option("remove_on_fail", remove_on_fail),
        job_id=None if job_id is None else _job_id(job_id),
    )


def encode_data(data: object, max_bytes: int) -> tuple[dict[str, Any], str]:
    """Check job data is a JSON object within ``max_bytes``; return it as a dict and
    as JSON text."""
    if data is None:
        return {}, "{}"
    if not isinstance(data, Mapping) or not all(isinstance(k, str) for k in data):
        raise JobOptionsError("job data must be a JSON object (a dict with str keys)")
    try:
        # No NaN or Infinity: they are not JSON, and readers of the job would choke.
        text = json.dumps(data, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise JobOptionsError(f"job data is not JSON-serialisable: {exc}") from None
    size = len(text.encode())
    if size > max_bytes:
        raise JobOptionsError(f"job data is {size} bytes; the limit is {max_bytes} (JOB_MAX_BYTES)")
    return dict(data), text


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def require_delay_ms(name: str, value: object) -> int:
    """A delay in ms, 0..MAX_DELAY_MS (JobOptionsError otherwise)."""
    return _bounded(name, value, 0, MAX_DELAY_MS)


def require_priority(value: object) -> int:
    """A BullMQ priority, 0..MAX_PRIORITY (JobOptionsError otherwise)."""
    return _bounded("priority", value, 0, MAX_PRIORITY)


def _bounded(name: str, value: object, minimum: int, maximum: int) -> int:
    return whole_number(name, value, minimum=minimum, maximum=maximum, error=JobOptionsError)


def _keep_option(name: str, value: object) -> KeepOption | None:
    if value is None or isinstance(value, bool):
        return value
    return _bounded(name, value, 0, MAX_KEEP)


def _job_id(value: object) -> str:
    if (
        not isinstance(value, str)
        or not value
        or len(value) > MAX_JOB_ID_CHARS
        or any(ch.isspace() or unicodedata.category(ch).startswith("C") for ch in value)
    ):
        shown = repr(value) if len(repr(value)) <= 80 else f"{repr(value)[:77]}..."
        raise JobOptionsError(
            f"job_id must be 1-{MAX_JOB_ID_CHARS} printable characters without spaces, not {shown}"
        )
    return value

"""BullMQ job options: validation, defaults and backoff arithmetic.

Names and units are BullMQ's: ``delay`` and backoff ``delay`` in milliseconds,
``attempts`` counts every try (3 means one try and two retries).
"""

from __future__ import annotations

import json
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

BackoffType = Literal["fixed", "exponential"]
KeepOption = bool | int


@dataclass(frozen=True)
class Backoff:
    """Wait between tries: ``fixed`` waits ``delay_ms``; ``exponential`` doubles it each try."""

    type: BackoffType = DEFAULT_BACKOFF_TYPE  # type: ignore[assignment]
    delay_ms: int = DEFAULT_BACKOFF_DELAY_MS

    def delay_for(self, attempts_made: int) -> int:
        """Milliseconds to wait after try number ``attempts_made`` (1-based) failed."""
        if self.type == "fixed":
            return self.delay_ms
        return int(self.delay_ms * 2 ** (attempts_made - 1))

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
            return cls("fixed", _non_negative("backoff", value))
        if isinstance(value, Mapping):
            kind = value.get("type", DEFAULT_BACKOFF_TYPE)
            if kind not in ("fixed", "exponential"):
                raise JobOptionsError(
                    f"backoff type must be 'fixed' or 'exponential', not {kind!r}"
                )
            delay = _non_negative("backoff delay", value.get("delay", DEFAULT_BACKOFF_DELAY_MS))
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
    """Validate BullMQ options; raise JobOptionsError naming the first bad one."""
    return JobOptions(
        delay_ms=0 if delay is None else _non_negative("delay", delay),
        priority=0 if priority is None else _non_negative("priority", priority),
        attempts=DEFAULT_ATTEMPTS if attempts is None else _positive("attempts", attempts),
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
        text = json.dumps(data)
    except (TypeError, ValueError) as exc:
        raise JobOptionsError(f"job data is not JSON-serialisable: {exc}") from None
    size = len(text.encode())
    if size > max_bytes:
        raise JobOptionsError(f"job data is {size} bytes; the limit is {max_bytes} (JOB_MAX_BYTES)")
    return dict(data), text


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _non_negative(name: str, value: object) -> int:
    return whole_number(name, value, minimum=0, error=JobOptionsError)


def _positive(name: str, value: object) -> int:
    return whole_number(name, value, minimum=1, error=JobOptionsError)


def _keep_option(name: str, value: object) -> KeepOption | None:
    if value is None or isinstance(value, bool):
        return value
    return _non_negative(name, value)


def _job_id(value: object) -> str:
    if (
        not isinstance(value, str)
        or not value
        or len(value) > 256
        or any(ch.isspace() for ch in value)
    ):
        raise JobOptionsError(f"job_id must be 1-256 characters without spaces, not {value!r}")
    return value

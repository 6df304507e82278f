"""Early, clear errors for bad arguments: each message names the argument and the value.

:func:`whole_number` is the one check of counts, ids, amounts and durations across
the platform; callers pass the ValueError subclass their API raises
(JobOptionsError, PaymentError, ...).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


def require_key(name: str, value: object) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, not {value!r}")
    return value


def whole_number(
    name: str,
    value: object,
    *,
    minimum: int = 1,
    maximum: int | None = None,
    unit: str = "",
    error: type[ValueError] = ValueError,
) -> int:
    """``value`` when it is an int (not a bool) from ``minimum`` to ``maximum``; otherwise
    raise ``error`` saying so, e.g. "amount must be a whole number of minor units from 1
    to 9223372036854775807"."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        of = f" of {unit}" if unit else ""
        bounds = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise error(f"{name} must be a whole number{of} {bounds}, not {_short(value)}")
    return value


def json_within(what: str, value: object, max_bytes: int, setting: str) -> str:
    """``value`` as JSON text of at most ``max_bytes`` bytes (UTF-8). ValueError when it
    is not JSON (NaN and Infinity are not: a browser's JSON.parse refuses them) or is
    larger, naming ``setting``: "progress is 70012 bytes as JSON; the limit is 65536
    (PROGRESS_MAX_BYTES)"."""
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be JSON without NaN or Infinity: {exc}") from None
    size = len(text.encode())
    if size > max_bytes:
        raise ValueError(f"{what} is {size} bytes as JSON; the limit is {max_bytes} ({setting})")
    return text


def _short(value: object) -> str:
    """The value's repr, cut: a 10,000-digit number must not fill a log line."""
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**40 else "a huge number"
    return text if len(text) <= 60 else f"{text[:57]}..."


def require_positive(name: str, value: object) -> int:
    """A whole number > 0 (ValueError otherwise)."""
    return whole_number(name, value)


def require_ttl(name: str, value: object) -> int | None:
    """None (no expiry) or a whole number of seconds > 0."""
    if value is None:
        return None
    return require_positive(name, value)


def require_callable(name: str, value: object) -> Callable[..., Any]:
    """Something that can be called."""
    if not callable(value):
        raise ValueError(f"{name} must be callable, not {value!r}")
    return value

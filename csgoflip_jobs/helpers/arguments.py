"""Early, clear errors for bad arguments: each message names the argument and the value.

:func:`whole_number` is the one check of counts, ids, amounts and durations across
the platform; callers pass the ValueError subclass their API raises
(JobOptionsError, PaymentError, ...).
"""

from __future__ import annotations

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
    unit: str = "",
    error: type[ValueError] = ValueError,
) -> int:
    """``value`` when it is an int (not a bool) of at least ``minimum``; otherwise raise
    ``error`` saying so, e.g. "amount must be a whole number of minor units >= 1"."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        of = f" of {unit}" if unit else ""
        raise error(f"{name} must be a whole number{of} >= {minimum}, not {value!r}")
    return value


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

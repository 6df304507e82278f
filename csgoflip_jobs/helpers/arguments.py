"""Early ValueError for bad arguments to the helpers, with a message naming the argument."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def require_key(name: str, value: object) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, not {value!r}")
    return value


def require_positive(name: str, value: object) -> int:
    """A whole number > 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a whole number > 0, not {value!r}")
    return value


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

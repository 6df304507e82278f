"""Count this process's writes to Redis sockets: one per round trip."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from redis.connection import Connection


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """``round_trips[0]`` grows by one for every command or pipeline sent."""
    sent = [0]
    original: Callable[..., None] = Connection.send_packed_command

    def counting(self: Connection, command: Any, check_health: bool = True) -> None:
        sent[0] += 1
        original(self, command, check_health)

    monkeypatch.setattr(Connection, "send_packed_command", counting)
    yield sent

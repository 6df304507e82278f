"""A real SMTP server (aiosmtpd) on 127.0.0.1 for the email tests, with scripted answers."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Received:
    """One accepted message and when its DATA finished."""

    message: EmailMessage
    envelope_to: list[str]
    at: float


@dataclass
class ScriptedHandler:
    """Accepts mail, or answers DATA with the next scripted reply (e.g. '451 ...')."""

    replies: list[str] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    attempts: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.attempts += 1
        if self.replies:
            return self.replies.pop(0)
        parsed = message_from_bytes(envelope.original_content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.received.append(Received(parsed, list(envelope.rcpt_tos), time.time()))
        return "250 Message accepted for delivery"


def start_smtp(handler: ScriptedHandler, port: int) -> Controller:
    """Start the server; call ``.stop()`` when done."""
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    return controller

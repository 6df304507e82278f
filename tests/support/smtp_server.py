"""A real SMTP server (aiosmtpd) on 127.0.0.1 for the email tests, with scripted answers."""

from __future__ import annotations

import asyncio
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
    """Accepts mail, or answers DATA with the next scripted reply (e.g. '451 ...');
    answers each connection's EHLO after the next of ``ehlo_delays_s`` (a slow
    server, or a slow network, at the start of one conversation)."""

    replies: list[str] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    attempts: int = 0
    ehlo_delays_s: list[float] = field(default_factory=list)

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        if self.ehlo_delays_s:
            await asyncio.sleep(self.ehlo_delays_s.pop(0))
        session.host_name = hostname
        return responses

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

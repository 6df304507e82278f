"""Tasks of the ``email`` queue.

A global rate limit (EMAIL_RATE_LIMIT, e.g. 10/s) holds across every email
worker: a job over it is put back until a slot frees, without using a try.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from csgoflip_jobs import RateLimitService, UnrecoverableError, app, keys
from csgoflip_jobs.emails.errors import PermanentEmailError
from csgoflip_jobs.emails.sender import EmailService
from csgoflip_jobs.settings import get_settings

EMAIL_RATE_MARGIN_MS = 50
"""Added to the email window, so the send after a full window lands past it at the server
even when one message's transfer took longer than another's."""


@cache
def _email_service() -> EmailService:
    return EmailService()


@app.task(name="send-email", bind=True)
def send_email(self: Any, to: str, template: str, context: dict[str, Any] | None = None) -> str:
    """Send ``template`` rendered with ``context`` to ``to``; returns the Message-ID.

    The rate-limit slot is taken once the SMTP session is ready, right before the
    message goes: taken before rendering and connecting, a send whose start was slow
    (a cold process, a slow greeting) reached the server late, next to the sends of
    the following window. Over the limit, the connection closes unused and the job is
    put back."""
    limit, window_ms = get_settings().email_rate

    def take_slot() -> None:
        wait_ms = RateLimitService().take_slot(
            keys.EMAIL_RATE_KEY, limit, window_ms + EMAIL_RATE_MARGIN_MS
        )
        if wait_ms:
            self.defer(wait_ms)

    try:
        return _email_service().send(to, template, context or {}, when_ready=take_slot)
    except PermanentEmailError as exc:
        raise UnrecoverableError(str(exc)) from exc

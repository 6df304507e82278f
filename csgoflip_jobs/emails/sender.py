"""``EmailService``: real email over SMTP, rendered from Jinja2 templates.

A template ``NAME`` is three files in ``csgoflip_jobs/emails/templates``:
``NAME.subject.txt``, ``NAME.txt`` (plain-text part) and ``NAME.html`` (HTML
part, autoescaped). Missing context variables are errors, not blanks.

SMTP answers decide what happens next: 4xx and connection trouble raise
TransientEmailError (the job retries: 3 tries, 1 s, 2 s); 5xx, a malformed
address or a bad template raise PermanentEmailError (the job fails at once).
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

from email_validator import EmailNotValidError, validate_email
from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateError, select_autoescape

from csgoflip_jobs.emails.errors import PermanentEmailError, TransientEmailError
from csgoflip_jobs.settings import Settings, get_settings, revealed

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


class EmailService:
    """Renders and sends one email per call."""

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings or get_settings()
        self._templates = Environment(
            loader=FileSystemLoader(TEMPLATES_DIR),
            autoescape=select_autoescape(enabled_extensions=("html",), default=False),
            undefined=StrictUndefined,
        )

    def render(self, to: str, template: str, context: dict[str, Any]) -> EmailMessage:
        """Build the message (both parts) without sending it."""
        address = _valid_address(to)
        try:
            subject = self._templates.get_template(f"{template}.subject.txt").render(context)
            text = self._templates.get_template(f"{template}.txt").render(context)
            html = self._templates.get_template(f"{template}.html").render(context)
        except TemplateError as exc:
            raise PermanentEmailError(f"template {template!r}: {exc}") from exc
        subject = subject.strip()
        if any(ch in subject for ch in "\r\n\x00"):
            # A header may not span lines (it would let data add headers); no later try
            # renders this subject differently.
            raise PermanentEmailError(
                f"template {template!r}: the subject holds a line break: {subject[:80]!r}"
            )
        message = EmailMessage()
        message["From"] = self._settings.email_from
        message["To"] = address
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain="csgoflip.local")
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        return message

    def send(
        self,
        to: str,
        template: str,
        context: dict[str, Any],
        when_ready: Callable[[], None] | None = None,
    ) -> str:
        """Render and send; returns the Message-ID. ``when_ready`` runs once the SMTP
        session is set up, right before the message is handed over, and may raise to
        send nothing: a rate limit taken there spaces the messages as the server sees
        them, whatever rendering and the connection's set-up took."""
        message = self.render(to, template, context)
        try:
            self._deliver(message, when_ready)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _text in exc.recipients.values()]
            _raise_for(min(codes), f"recipient refused: {exc.recipients}")
        except smtplib.SMTPResponseException as exc:
            _raise_for(exc.smtp_code, f"SMTP {exc.smtp_code}: {exc.smtp_error!r}")
        except (smtplib.SMTPException, OSError) as exc:
            raise TransientEmailError(f"SMTP connection failed: {exc}") from exc
        return str(message["Message-ID"])

    def _deliver(self, message: EmailMessage, when_ready: Callable[[], None] | None) -> None:
        settings = self._settings
        with smtplib.SMTP(
            settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_s
        ) as smtp:
            smtp.ehlo_or_helo_if_needed()
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_user:
                smtp.login(settings.smtp_user, revealed(settings.smtp_password))
            if when_ready is not None:
                when_ready()
            smtp.send_message(message)


def _valid_address(to: object) -> str:
    if not isinstance(to, str):
        raise PermanentEmailError(f"email address must be a string, not {to!r}")
    try:
        return validate_email(to, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise PermanentEmailError(f"malformed email address {to!r}: {exc}") from None


def _raise_for(code: int, message: str) -> None:
    if 400 <= code < 500:
        raise TransientEmailError(message)
    raise PermanentEmailError(message)

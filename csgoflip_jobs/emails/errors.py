"""Errors of sending email."""

from __future__ import annotations

from csgoflip_jobs.errors import CsgoflipJobsError


class EmailError(CsgoflipJobsError):
    """An email could not be sent."""


class TransientEmailError(EmailError):
    """The mail server may accept it later (4xx, connection trouble); retry."""


class PermanentEmailError(EmailError, ValueError):
    """It can never be sent: a malformed address, an unknown template, or a 5xx answer."""

"""Errors of the Jobs board."""

from __future__ import annotations

from csgoflip_jobs.errors import CsgoflipJobsError


class NotFoundError(CsgoflipJobsError, LookupError):
    """A queue, state, job or action the board was asked for does not exist (the message
    says which, and what there is)."""

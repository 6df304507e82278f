"""Errors of the job engine."""

from __future__ import annotations

from csgoflip_jobs.errors import CsgoflipJobsError


class UnrecoverableError(CsgoflipJobsError):
    """Raised by a task to fail its job at once, without further tries."""


class JobOptionsError(CsgoflipJobsError, ValueError):
    """A job was given bad data or options; nothing was enqueued."""

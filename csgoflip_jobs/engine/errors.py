"""Errors of the job engine."""

from __future__ import annotations

from csgoflip_jobs.errors import CsgoflipJobsError


class UnrecoverableError(CsgoflipJobsError):
    """Raised by a task to fail its job at once, without further tries."""


class JobOptionsError(CsgoflipJobsError, ValueError):
    """A job was given bad data or options; nothing was enqueued."""


class JobStalledError(UnrecoverableError):
    """A job's worker died while running it more often than MAX_STALLED_COUNT allows."""


class JobStateError(CsgoflipJobsError):
    """A job or queue is not in a state that allows the operation (the message says which)."""


class JobNotFoundError(CsgoflipJobsError, LookupError):
    """No job has this id: it was never added, was removed, or retention trimmed it."""


class JobFailedError(CsgoflipJobsError):
    """The job awaited failed; ``failed_reason`` says why."""

    def __init__(self, job_id: str, failed_reason: str | None) -> None:
        super().__init__(f"job {job_id!r} failed: {failed_reason}")
        self.job_id = job_id
        self.failed_reason = failed_reason

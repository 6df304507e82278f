"""Errors of the Redis helpers and of reaching the queue Redis."""

from __future__ import annotations

from csgoflip_jobs.errors import CsgoflipJobsError


class BrokerError(CsgoflipJobsError):
    """The queue Redis did not take a job; the message names its URL without the password."""

    stored_ids: list[str] | None = None
    """When Redis answered per job (add_bulk into a full Redis): the ids of the batch's
    jobs it holds, in batch order; None when that is unknown (a lost connection)."""
    refused: list[int] | None = None
    """Then also: the batch positions of the jobs it refused, to add again."""


class BrokerUnavailableError(BrokerError):
    """The queue Redis could not be reached within the configured timeouts and retries."""


class BrokerTimeoutError(BrokerUnavailableError):
    """The queue Redis did not answer in time: it may still store the job when it resumes."""


class BrokerAuthenticationError(BrokerUnavailableError):
    """The queue Redis refused the password (or user) in the broker URL."""


class BrokerOutOfMemoryError(BrokerError):
    """The queue Redis is at maxmemory (noeviction) and refused to store the job."""


class WrongKeyTypeError(BrokerError):
    """A key the call uses holds another kind of value than the platform keeps there
    (something else wrote it); the message names the call's keys."""


class BrokerNotReplicatedError(BrokerError):
    """The queue Redis holds the job, but fewer replicas than REDIS_MIN_REPLICAS_ACK
    confirmed it in time: it may or may not survive a failover; adding it again with
    the same job_id is safe."""


class UnsafeBrokerError(CsgoflipJobsError):
    """The broker Redis would evict queued jobs or locks under memory pressure."""


class LockError(CsgoflipJobsError):
    """A Redlock lock could not be acquired, extended or released on a quorum of masters."""


class LockLostError(LockError):
    """A lock held by ``using`` could not be extended; the routine no longer holds it."""

"""The package's exceptions: one small hierarchy, one line of doc each."""

from __future__ import annotations


class CsgoflipJobsError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(CsgoflipJobsError, ValueError):
    """An environment variable holds a value the platform cannot use."""


class UnrecoverableError(CsgoflipJobsError):
    """Raised by a task to fail its job at once, without further tries (as in BullMQ)."""


class JobOptionsError(CsgoflipJobsError, ValueError):
    """A job was given bad data or options; nothing was enqueued."""


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


class UnsafeBrokerError(CsgoflipJobsError):
    """The broker Redis would evict queued jobs or locks under memory pressure."""


class LockError(CsgoflipJobsError):
    """A Redlock lock could not be acquired, extended or released on a quorum of masters."""


class LockLostError(LockError):
    """A lock held by ``using`` could not be extended; the routine no longer holds it."""


class PaymentError(CsgoflipJobsError, ValueError):
    """A payment request is invalid: unknown or malformed id, bad amount, too little balance."""


class InsufficientFundsError(PaymentError):
    """The balance does not cover the amount."""


class StaleLockError(CsgoflipJobsError):
    """A write carried a fencing token older than one the store has seen: the lock had expired."""


class PayoutError(CsgoflipJobsError):
    """The payout gateway did not pay."""


class TransientPayoutError(PayoutError):
    """The gateway may succeed later (5xx, timeout, connection error); retry."""


class PermanentPayoutError(PayoutError):
    """The gateway refused the payout for good (4xx); do not retry."""


class EmailError(CsgoflipJobsError):
    """An email could not be sent."""


class TransientEmailError(EmailError):
    """The mail server may accept it later (4xx, connection trouble); retry."""


class PermanentEmailError(EmailError, ValueError):
    """It can never be sent: a malformed address, an unknown template, or a 5xx answer."""

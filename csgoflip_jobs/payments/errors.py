"""Errors of the payments domain."""

from __future__ import annotations

from csgoflip_jobs.errors import CsgoflipJobsError


class PaymentError(CsgoflipJobsError, ValueError):
    """A payment request is invalid: unknown or malformed id, bad amount, too little balance."""


class InsufficientFundsError(PaymentError):
    """The balance does not cover the amount."""


class StaleLockError(CsgoflipJobsError):
    """A write carried a fencing token older than one the store has seen: the lock had expired."""


class PayoutError(CsgoflipJobsError):
    """The payout gateway did not pay."""


class TransientPayoutError(PayoutError):
    """No payout confirmed this time; trying again with the same idempotency key is safe.
    Whether money moved is unknown (the last try leaves the withdrawal uncertain) unless
    it is a :class:`PayoutNotSentError`."""


class PayoutNotSentError(TransientPayoutError):
    """The request never reached the gateway (no connection, or the sandbox's outage):
    nothing was paid, so the last try may return the funds."""


class PayoutTimeoutError(TransientPayoutError):
    """No answer in time: the payout may or may not have happened."""


class PermanentPayoutError(PayoutError):
    """The gateway refused the payout and made none (its documented refusals); do not
    retry: the funds go back."""

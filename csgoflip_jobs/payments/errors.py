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
    """The gateway may succeed later (5xx, timeout, connection error); retry."""


class PayoutTimeoutError(TransientPayoutError):
    """No answer in time: the payout may or may not have happened."""


class PermanentPayoutError(PayoutError):
    """The gateway refused the payout for good (4xx); do not retry."""

"""Fenced writes of the ledger: every balance and withdrawal change goes through here.

A write carries the fencing token of the lock it was made under and applies only
while the row has seen no newer token (``fence_token <= token``), so a holder whose
lock expired (and was taken by someone newer) cannot write. A balance change and
its ledger entry commit together; (kind, reference) is unique in the ledger, so a
repeated confirm or refund cannot apply twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import CursorResult, Update, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from csgoflip_jobs.helpers.arguments import whole_number
from csgoflip_jobs.helpers.redlock import LockSignal
from csgoflip_jobs.payments.errors import InsufficientFundsError, PaymentError, StaleLockError
from csgoflip_jobs.payments.models import MAX_ID, MAX_MINOR_UNITS, LedgerEntry, User, Withdrawal


def change_balance(
    session: Session, signal: LockSignal, user_id: int, delta: int, kind: str, reference: str
) -> None:
    """Apply ``delta`` to a balance with its ledger entry, fenced by the lock's token.

    The new balance stays within 0..MAX_MINOR_UNITS: the condition compares the balance
    with a bound computed here, never ``balance + delta``, which would overflow BIGINT in
    the database (PostgreSQL raises; SQLite silently turns the sum into a float).
    """
    signal.check()
    token = signal.fencing_token
    fits = (
        User.balance_minor <= MAX_MINOR_UNITS - delta if delta > 0 else User.balance_minor >= -delta
    )
    applied = changed(
        session,
        update(User)
        .where(User.id == user_id, User.fence_token <= token, fits)
        .values(balance_minor=User.balance_minor + delta, fence_token=token),
    )
    if not applied:
        user = session.get(User, user_id)
        if user is not None and user.fence_token > token:
            raise StaleLockError(f"balance of user {user_id} was written under a newer lock")
        if delta > 0:
            raise PaymentError(
                f"user {user_id}'s balance cannot take {delta} more minor units (the most a "
                f"balance holds is {MAX_MINOR_UNITS}); nothing changed"
            )
        raise InsufficientFundsError(f"user {user_id} cannot be charged {-delta}")
    session.add(LedgerEntry(user_id=user_id, amount_minor=delta, kind=kind, reference=reference))
    try:
        session.flush()
    except IntegrityError:
        # The caller's transaction rolls back, balance change included.
        raise PaymentError(f"ledger already has {kind} {reference}") from None


def move_withdrawal(
    session: Session,
    signal: LockSignal,
    withdrawal_id: int,
    sources: Sequence[str],
    status: str,
    **values: str,
) -> None:
    """Move a withdrawal from one of ``sources`` to ``status``, only under a lock no one
    has overtaken; StaleLockError when it moved on (or the lock was overtaken)."""
    signal.check()
    token = signal.fencing_token
    statement = (
        update(Withdrawal)
        .where(
            Withdrawal.id == withdrawal_id,
            Withdrawal.status.in_(sources),
            Withdrawal.fence_token <= token,
        )
        .values(status=status, fence_token=token, **values)
    )
    if not changed(session, statement):
        raise StaleLockError(f"withdrawal {withdrawal_id} moved on under a newer lock")


def changed(session: Session, statement: Update) -> int:
    """Run an UPDATE; return how many rows it changed."""
    result = cast(CursorResult[Any], session.execute(statement))
    return result.rowcount


def require_id(name: str, value: object) -> int:
    """A database id: a whole number from 1 to MAX_ID (PaymentError otherwise)."""
    return whole_number(name, value, maximum=MAX_ID, error=PaymentError)


def require_amount(value: object) -> int:
    """An amount of money: whole minor units from 1 to MAX_MINOR_UNITS (PaymentError
    otherwise)."""
    return whole_number(
        "amount", value, maximum=MAX_MINOR_UNITS, unit="minor units", error=PaymentError
    )

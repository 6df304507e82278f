"""Tables of the payments ledger. Money is integer minor units (cents), never floats.

* ``users.balance_minor`` can never go negative (a CHECK constraint, and the
  service checks first); ``users.fence_token`` is the newest lock fencing
  token that wrote the balance, so an older (expired) lock holder cannot.
* ``ledger_entries`` is append-only (database triggers refuse UPDATE and
  DELETE); every balance change is one entry, and (kind, reference) is unique,
  so no deposit is credited twice and no withdrawal debited or refunded twice.
* ``sandbox_payouts`` is the sandbox gateway's record of money sent, unique
  per idempotency key.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

MAX_MINOR_UNITS = 2**63 - 1
"""Largest amount or balance: BIGINT's maximum (minor units)."""

MAX_ID = 2**31 - 1
"""Largest id of a user, deposit or withdrawal: the INTEGER primary keys' maximum."""


class Base(DeclarativeBase):
    """Declarative base of the payment tables."""


class User(Base):
    """A player's balance."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint("balance_minor >= 0", name="balance_not_negative"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    balance_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    fence_token: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Deposit(Base):
    """Money coming in; credited once when confirmed."""

    __tablename__ = "deposits"
    __table_args__ = (
        CheckConstraint("amount_minor > 0", name="deposit_positive"),
        CheckConstraint("status IN ('pending', 'confirmed')", name="deposit_status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Withdrawal(Base):
    """Money going out: reserved at request, paid once, or returned when it fails or is
    cancelled. ``pending`` -> ``processing`` (a payout began) -> ``completed``; or
    ``failed`` / ``cancelled`` (refunded), or ``uncertain`` (for an operator)."""

    __tablename__ = "withdrawals"
    __table_args__ = (
        CheckConstraint("amount_minor > 0", name="withdrawal_positive"),
        CheckConstraint(
            "status IN ('pending', 'processing', 'completed', 'failed', 'uncertain', 'cancelled')",
            name="withdrawal_status",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    fence_token: Mapped[int] = mapped_column(BigInteger, default=0)
    payout_reference: Mapped[str | None] = mapped_column(String(128))
    failure_reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class LedgerEntry(Base):
    """One balance change; never updated or deleted."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        UniqueConstraint("kind", "reference", name="ledger_once_per_reference"),
        CheckConstraint("amount_minor <> 0", name="ledger_non_zero"),
        CheckConstraint("kind IN ('deposit', 'withdrawal', 'refund')", name="ledger_kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    reference: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class SandboxPayout(Base):
    """A payout the sandbox gateway made; one per idempotency key."""

    __tablename__ = "sandbox_payouts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    user_id: Mapped[int] = mapped_column(Integer)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class SandboxPlan(Base):
    """Sandbox behaviour for one user's payouts, for demos and tests: fail the next
    ``failures`` of them (-1: all), transiently or for good, and take ``delay_ms``."""

    __tablename__ = "sandbox_plans"

    user_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    permanent: Mapped[bool] = mapped_column(Boolean, default=False)
    delay_ms: Mapped[int] = mapped_column(Integer, default=0)

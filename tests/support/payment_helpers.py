"""Build a PaymentService on a test database, and read its tables."""

from __future__ import annotations

from sqlalchemy import func, select

from csgoflip_jobs.payments.database import make_engine, session_factory
from csgoflip_jobs.payments.gateways import SandboxGateway
from csgoflip_jobs.payments.models import LedgerEntry, SandboxPayout, Withdrawal
from csgoflip_jobs.payments.service import PaymentService


def payment_service(database_url: str) -> PaymentService:
    """A service on ``database_url`` with the sandbox gateway."""
    sessions = session_factory(make_engine(database_url))
    return PaymentService(sessions, SandboxGateway(sessions))


def funded_user(service: PaymentService, amount_minor: int) -> int:
    """A user whose balance was credited through a confirmed deposit."""
    user_id = service.create_user()
    service.confirm_deposit(service.create_deposit(user_id, amount_minor))
    return user_id


def count_payouts(service: PaymentService, withdrawal_id: int) -> int:
    """Sandbox payouts made for one withdrawal."""
    with service.sessions() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(SandboxPayout)
                .where(SandboxPayout.idempotency_key == f"withdrawal:{withdrawal_id}")
            )
            or 0
        )


def ledger_entries(service: PaymentService, reference: str) -> list[tuple[str, int]]:
    """(kind, amount) of every ledger entry with this reference."""
    with service.sessions() as session:
        rows = session.execute(
            select(LedgerEntry.kind, LedgerEntry.amount_minor)
            .where(LedgerEntry.reference == reference)
            .order_by(LedgerEntry.id)
        )
        return [(kind, amount) for kind, amount in rows]


def withdrawal_statuses(service: PaymentService) -> dict[str, int]:
    """How many withdrawals are in each status."""
    with service.sessions() as session:
        rows = session.execute(select(Withdrawal.status, func.count()).group_by(Withdrawal.status))
        return {status: count for status, count in rows}

"""Reconciliation: every balance against its ledger, every payout against its withdrawal."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from csgoflip_jobs import keys
from csgoflip_jobs.payments.gateways import PayoutGateway, SandboxGateway
from csgoflip_jobs.payments.models import LedgerEntry, User, Withdrawal


@dataclass
class ReconcileReport:
    """What ``reconcile()`` found; ``ok`` when there is nothing to look at."""

    users: int = 0
    completed_withdrawals: int = 0
    payouts: int | None = None
    problems: list[str] = field(default_factory=list)
    uncertain_withdrawals: list[int] = field(default_factory=list)
    """Withdrawals whose payout may or may not have happened: an operator decides."""

    @property
    def ok(self) -> bool:
        """True when balances match the ledger and payouts match completed withdrawals."""
        return not self.problems and not self.uncertain_withdrawals


def reconcile(sessions: sessionmaker[Session], gateway: PayoutGateway) -> ReconcileReport:
    """Check every balance against its ledger and, with the sandbox gateway, that each
    completed withdrawal was paid once and no refunded or cancelled one was paid."""
    report = ReconcileReport()
    with sessions() as session:
        ledger = dict(
            session.execute(
                select(LedgerEntry.user_id, func.sum(LedgerEntry.amount_minor)).group_by(
                    LedgerEntry.user_id
                )
            ).all()
        )
        for user_id, balance in session.execute(select(User.id, User.balance_minor)):
            report.users += 1
            if balance != (ledger.get(user_id) or 0):
                report.problems.append(
                    f"user {user_id}: balance {balance} but ledger "
                    f"sums to {ledger.get(user_id) or 0}"
                )
        withdrawals = session.execute(select(Withdrawal.id, Withdrawal.status)).all()
    report.completed_withdrawals = sum(1 for _id, status in withdrawals if status == "completed")
    report.uncertain_withdrawals = [i for i, status in withdrawals if status == "uncertain"]
    if isinstance(gateway, SandboxGateway):
        _check_payouts(report, withdrawals, gateway.payouts_by_key())
    return report


def _check_payouts(
    report: ReconcileReport, withdrawals: Sequence[Any], payouts: dict[str, int]
) -> None:
    report.payouts = sum(payouts.values())
    for withdrawal_id, status in withdrawals:
        paid = payouts.get(keys.withdrawal_job_id(withdrawal_id), 0)
        if status == "completed" and paid != 1:
            report.problems.append(f"withdrawal {withdrawal_id}: completed with {paid} payouts")
        if status in ("failed", "cancelled") and paid:
            report.problems.append(f"withdrawal {withdrawal_id}: refunded but also paid")

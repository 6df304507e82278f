"""``PaymentService``: deposits and withdrawals, each credited, debited and paid once.

How money stays right:

* Every balance change holds the user's Redlock lock (``user:<id>:balance``)
  and writes with its fencing token: the UPDATE only applies while
  ``users.fence_token <= token``, so a holder whose lock expired (and was
  taken by someone newer) cannot write. The balance change and its ledger
  entry commit together; (kind, reference) is unique in the ledger, so a
  repeated confirm or refund cannot apply twice.
* A withdrawal reserves its funds at request (ledger ``withdrawal``, -amount)
  and is paid by the ``process-withdrawal`` job: under the withdrawal's own
  lock, the gateway is called with the idempotency key ``withdrawal:<id>``
  (so a duplicate or redelivered job pays once), then the status moves from
  pending to completed with a fenced, conditional UPDATE.
* When the tries run out or the gateway refuses, the withdrawal is failed and
  the funds return through the ledger (``refund``). A final timeout is
  different: the payout may have happened, so the withdrawal becomes
  ``uncertain`` and keeps its reservation for an operator (``reconcile``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, cast

from sqlalchemy import CursorResult, Update, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from csgoflip_jobs import keys
from csgoflip_jobs.engine.job_queue import JobQueue
from csgoflip_jobs.helpers.arguments import whole_number
from csgoflip_jobs.helpers.redlock import LockSignal, RedlockService, default_redlock
from csgoflip_jobs.payments.database import session_factory
from csgoflip_jobs.payments.errors import (
    InsufficientFundsError,
    PaymentError,
    PayoutTimeoutError,
    PermanentPayoutError,
    StaleLockError,
)
from csgoflip_jobs.payments.gateways import (
    PayoutGateway,
    PayoutRequest,
    SandboxGateway,
    default_gateway,
)
from csgoflip_jobs.payments.models import Deposit, LedgerEntry, User, Withdrawal

BALANCE_LOCK_MS = 5000
"""Lock on a user's balance; extended automatically while held."""

WITHDRAWAL_LOCK_MS = 5000
"""Lock on one withdrawal while it is paid; a dead holder's lock frees after this."""

WITHDRAWAL_DELAY_MS = 5000

WITHDRAWAL_PRIORITY = 1
"""A withdrawal is paid 5 s after its request (time to cancel), at the highest priority."""

STUCK_WITHDRAWAL_AFTER_S = 300
"""A withdrawal still pending this long after its request is enqueued again."""

STUCK_WITHDRAWAL_SWEEP_S = 60
"""How often beat runs the stuck-withdrawal sweep."""

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    """What ``reconcile()`` found; ``ok`` when there is nothing to look at."""

    users: int = 0
    completed_withdrawals: int = 0
    payouts: int | None = None
    problems: list[str] = field(default_factory=list)
    uncertain_withdrawals: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when balances match the ledger and payouts match completed withdrawals."""
        return not self.problems and not self.uncertain_withdrawals


class PaymentService:
    """Deposits, withdrawals and reconciliation over the ledger."""

    def __init__(
        self,
        sessions: sessionmaker[Session] | None = None,
        gateway: PayoutGateway | None = None,
        redlock: RedlockService | None = None,
        queue: JobQueue | None = None,
    ) -> None:
        self._sessions = sessions or session_factory()
        self.gateway = gateway or default_gateway(self._sessions)
        self._redlock = redlock or default_redlock()
        self._queue = queue

    @property
    def sessions(self) -> sessionmaker[Session]:
        """Database sessions of this service (for reports and operators' tools)."""
        return self._sessions

    @property
    def queue(self) -> JobQueue:
        """The ``payment`` queue."""
        if self._queue is None:
            self._queue = JobQueue("payment")
        return self._queue

    # --- users and balances ------------------------------------------------------------
    def create_user(self) -> int:
        """A new user with a zero balance; returns the id."""
        with self._sessions() as session, session.begin():
            user = User(balance_minor=0, fence_token=0)
            session.add(user)
            session.flush()
            return user.id

    def get_balance(self, user_id: int) -> int:
        """The user's balance in minor units."""
        with self._sessions() as session:
            return self._user(session, _id("user_id", user_id)).balance_minor

    # --- deposits ----------------------------------------------------------------------
    def create_deposit(self, user_id: int, amount_minor: int) -> int:
        """Record money coming in (pending until confirmed); returns the deposit id."""
        user_id, amount = _id("user_id", user_id), _amount(amount_minor)
        with self._sessions() as session, session.begin():
            self._user(session, user_id)
            deposit = Deposit(user_id=user_id, amount_minor=amount, status="pending")
            session.add(deposit)
            session.flush()
            return deposit.id

    def schedule_deposit_processing(self, deposit_id: int) -> str:
        """Enqueue ``process-deposit``; enqueuing the same deposit twice adds one job."""
        deposit_id = _id("deposit_id", deposit_id)
        return self.queue.add(
            "process-deposit", {"deposit_id": deposit_id}, job_id=keys.deposit_job_id(deposit_id)
        )

    def confirm_deposit(self, deposit_id: int) -> bool:
        """Credit a pending deposit; False when it was already credited."""
        deposit_id = _id("deposit_id", deposit_id)
        with self._sessions() as session:
            deposit = session.get(Deposit, deposit_id)
            if deposit is None:
                raise PaymentError(f"unknown deposit {deposit_id}")
            if deposit.status == "confirmed":
                return False
            user_id, amount = deposit.user_id, deposit.amount_minor
        with (
            self._redlock.lock(keys.balance_lock(user_id), BALANCE_LOCK_MS) as signal,
            self._sessions() as session,
            session.begin(),
        ):
            confirmed = _changed(
                session,
                update(Deposit)
                .where(Deposit.id == deposit_id, Deposit.status == "pending")
                .values(status="confirmed", confirmed_at=datetime.now(UTC)),
            )
            if not confirmed:
                return False
            self._change_balance(
                session, signal, user_id, amount, "deposit", f"deposit:{deposit_id}"
            )
        return True

    # --- withdrawals -------------------------------------------------------------------
    def request_withdrawal(self, user_id: int, amount_minor: int) -> int:
        """Reserve the funds, then schedule the payout (5 s delay, priority 1)."""
        user_id, amount = _id("user_id", user_id), _amount(amount_minor)
        with (
            self._redlock.lock(keys.balance_lock(user_id), BALANCE_LOCK_MS) as signal,
            self._sessions() as session,
            session.begin(),
        ):
            user = self._user(session, user_id)
            if user.balance_minor < amount:
                raise InsufficientFundsError(
                    f"user {user_id} has {user.balance_minor}, cannot withdraw {amount}"
                )
            withdrawal = Withdrawal(user_id=user_id, amount_minor=amount, status="pending")
            session.add(withdrawal)
            session.flush()
            withdrawal_id = withdrawal.id
            self._change_balance(
                session, signal, user_id, -amount, "withdrawal", f"withdrawal:{withdrawal_id}"
            )
        # After the commit: a worker must find the row. Should this enqueue fail,
        # the withdrawal stays pending and the stuck-withdrawal sweep enqueues it.
        self.schedule_withdrawal_processing(withdrawal_id)
        return withdrawal_id

    def schedule_withdrawal_processing(self, withdrawal_id: int) -> str:
        """Enqueue ``process-withdrawal`` (5 s delay, priority 1); once per withdrawal."""
        withdrawal_id = _id("withdrawal_id", withdrawal_id)
        return self.queue.add(
            "process-withdrawal",
            {"withdrawal_id": withdrawal_id},
            delay=WITHDRAWAL_DELAY_MS,
            priority=WITHDRAWAL_PRIORITY,
            job_id=keys.withdrawal_job_id(withdrawal_id),
        )

    def requeue_stuck_withdrawals(self, older_than_s: int = STUCK_WITHDRAWAL_AFTER_S) -> list[int]:
        """Enqueue again every withdrawal still pending ``older_than_s`` after its request.

        The database, not the queue, is the record of what is owed: a job can be
        lost (an enqueue that failed after the commit, or a message a killed
        worker had popped but not yet recorded). Running a withdrawal twice is
        safe (lock, idempotency key, fenced writes), so this drives each one
        again through one sweep job per withdrawal (``withdrawal:<id>:sweep``),
        which is left alone while it is queued or running. Returns the ids enqueued.
        """
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_s)
        with self._sessions() as session:
            stuck = session.execute(
                select(Withdrawal.id)
                .where(Withdrawal.status == "pending", Withdrawal.created_at <= cutoff)
                .order_by(Withdrawal.id)
            ).scalars()
            stuck_ids = list(stuck)
        requeued = [w for w in stuck_ids if self._drive_again(w)]
        if requeued:
            log.warning("re-enqueued %d stuck withdrawals: %s", len(requeued), requeued[:20])
        return requeued

    def _drive_again(self, withdrawal_id: int) -> bool:
        job_id = f"{keys.withdrawal_job_id(withdrawal_id)}:sweep"
        self.queue.remove(job_id)  # an earlier sweep's job, if it finished
        if self.queue.get_job(job_id) is not None:
            return False  # still queued or running
        self.queue.add(
            "process-withdrawal",
            {"withdrawal_id": withdrawal_id},
            priority=WITHDRAWAL_PRIORITY,
            job_id=job_id,
        )
        return True

    def get_withdrawal(self, withdrawal_id: int) -> Withdrawal:
        """The withdrawal row (detached)."""
        with self._sessions() as session:
            return self._withdrawal(session, _id("withdrawal_id", withdrawal_id))

    def process_withdrawal(self, withdrawal_id: int, *, final_try: bool = True) -> str:
        """Pay a pending withdrawal once; returns its status afterwards.

        Raises TransientPayoutError to be retried (after failing the withdrawal
        when ``final_try``) and PermanentPayoutError after failing it.
        """
        withdrawal_id = _id("withdrawal_id", withdrawal_id)
        lock = keys.withdrawal_lock(withdrawal_id)
        with self._redlock.lock(lock, WITHDRAWAL_LOCK_MS) as signal:
            withdrawal = self.get_withdrawal(withdrawal_id)
            if withdrawal.status != "pending":
                return withdrawal.status
            request = PayoutRequest(
                keys.withdrawal_job_id(withdrawal_id), withdrawal.user_id, withdrawal.amount_minor
            )
            try:
                reference = self.gateway.payout(request)
            except PermanentPayoutError as exc:
                self._give_up(signal, withdrawal, "failed", str(exc))
                raise
            except PayoutTimeoutError as exc:
                if final_try:
                    self._give_up(signal, withdrawal, "uncertain", str(exc))
                raise
            except Exception as exc:
                if final_try:
                    self._give_up(signal, withdrawal, "failed", str(exc))
                raise
            signal.check()
            self._finish(signal, withdrawal_id, status="completed", payout_reference=reference)
            return "completed"

    def _give_up(
        self, signal: LockSignal, withdrawal: Withdrawal, status: str, reason: str
    ) -> None:
        if status == "uncertain":
            self._finish(signal, withdrawal.id, status="uncertain", failure_reason=reason[:500])
            log.error(
                "withdrawal %s is uncertain (%s); funds stay reserved for review",
                withdrawal.id,
                reason,
            )
            return
        # Refund under the balance lock too: the balance changes.
        with (
            self._redlock.lock(
                keys.balance_lock(withdrawal.user_id), BALANCE_LOCK_MS
            ) as balance_signal,
            self._sessions() as session,
            session.begin(),
        ):
            self._finish(
                signal,
                withdrawal.id,
                status="failed",
                failure_reason=reason[:500],
                session=session,
            )
            self._change_balance(
                session,
                balance_signal,
                withdrawal.user_id,
                withdrawal.amount_minor,
                "refund",
                f"withdrawal:{withdrawal.id}",
            )
        log.warning("withdrawal %s failed (%s); funds returned", withdrawal.id, reason)

    def _finish(
        self,
        signal: LockSignal,
        withdrawal_id: int,
        *,
        status: str,
        session: Session | None = None,
        **values: str,
    ) -> None:
        """Move a pending withdrawal to ``status``, only under a lock no one has overtaken."""
        signal.check()
        token = signal.fencing_token
        statement = (
            update(Withdrawal)
            .where(
                Withdrawal.id == withdrawal_id,
                Withdrawal.status == "pending",
                Withdrawal.fence_token <= token,
            )
            .values(status=status, fence_token=token, **values)
        )
        if session is not None:
            changed = _changed(session, statement)
        else:
            with self._sessions() as own, own.begin():
                changed = _changed(own, statement)
        if not changed:
            raise StaleLockError(f"withdrawal {withdrawal_id} moved on under a newer lock")

    # --- shared ------------------------------------------------------------------------
    @staticmethod
    def _change_balance(
        session: Session, signal: LockSignal, user_id: int, delta: int, kind: str, reference: str
    ) -> None:
        """Apply ``delta`` with its ledger entry, fenced by the lock's token."""
        signal.check()
        token = signal.fencing_token
        changed = _changed(
            session,
            update(User)
            .where(User.id == user_id, User.fence_token <= token, User.balance_minor + delta >= 0)
            .values(balance_minor=User.balance_minor + delta, fence_token=token),
        )
        if not changed:
            user = session.get(User, user_id)
            if user is not None and user.fence_token > token:
                raise StaleLockError(f"balance of user {user_id} was written under a newer lock")
            raise InsufficientFundsError(f"user {user_id} cannot be charged {-delta}")
        session.add(
            LedgerEntry(user_id=user_id, amount_minor=delta, kind=kind, reference=reference)
        )
        try:
            session.flush()
        except IntegrityError:
            # The caller's transaction rolls back, balance change included.
            raise PaymentError(f"ledger already has {kind} {reference}") from None

    @staticmethod
    def _user(session: Session, user_id: int) -> User:
        user = session.get(User, user_id)
        if user is None:
            raise PaymentError(f"unknown user {user_id}")
        return user

    @staticmethod
    def _withdrawal(session: Session, withdrawal_id: int) -> Withdrawal:
        withdrawal = session.get(Withdrawal, withdrawal_id)
        if withdrawal is None:
            raise PaymentError(f"unknown withdrawal {withdrawal_id}")
        return withdrawal

    # --- reconciliation ------------------------------------------------------------------
    def reconcile(self) -> ReconcileReport:
        """Check every balance against its ledger and payouts against completed withdrawals."""
        report = ReconcileReport()
        with self._sessions() as session:
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
        report.completed_withdrawals = sum(
            1 for _id, status in withdrawals if status == "completed"
        )
        report.uncertain_withdrawals = [i for i, status in withdrawals if status == "uncertain"]
        if isinstance(self.gateway, SandboxGateway):
            self._check_payouts(report, withdrawals, self.gateway.payouts_by_key())
        return report

    @staticmethod
    def _check_payouts(
        report: ReconcileReport, withdrawals: Sequence[Any], payouts: dict[str, int]
    ) -> None:
        report.payouts = sum(payouts.values())
        for withdrawal_id, status in withdrawals:
            paid = payouts.get(keys.withdrawal_job_id(withdrawal_id), 0)
            if status == "completed" and paid != 1:
                report.problems.append(f"withdrawal {withdrawal_id}: completed with {paid} payouts")
            if status == "failed" and paid:
                report.problems.append(f"withdrawal {withdrawal_id}: refunded but also paid")


@cache
def _service_for(pid: int) -> PaymentService:
    return PaymentService()


def default_payment_service() -> PaymentService:
    """This process's PaymentService (tasks share its connections instead of opening more)."""
    return _service_for(os.getpid())


def _changed(session: Session, statement: Update) -> int:
    """Run an UPDATE; return how many rows it changed."""
    result = cast(CursorResult[Any], session.execute(statement))
    return result.rowcount


def _id(name: str, value: object) -> int:
    return whole_number(name, value, error=PaymentError)


def _amount(value: object) -> int:
    return whole_number("amount", value, unit="minor units", error=PaymentError)

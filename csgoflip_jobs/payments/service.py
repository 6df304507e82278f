"""``PaymentService``: deposits and withdrawals, each credited, debited and paid once.

How money stays right (the fenced writes are :mod:`csgoflip_jobs.payments.ledger`):

* Every balance change holds the user's Redlock lock (``user:<id>:balance``)
  and writes with its fencing token; the change and its ledger entry commit
  together, once per (kind, reference).
* A withdrawal reserves its funds at request (ledger ``withdrawal``, -amount)
  and is paid by the ``process-withdrawal`` job under the withdrawal's own lock:
  it moves ``pending`` to ``processing`` (fenced) before the gateway is called
  with the idempotency key ``withdrawal:<id>``, so a duplicate or redelivered job
  pays once, then to ``completed``.
* Until then a withdrawal can be cancelled (``cancel_withdrawal``): under the same
  lock, ``pending`` to ``cancelled`` with a ``refund`` entry. A cancel and a payout
  racing each other end as one of the two: the payout only starts from
  ``pending`` and the refund only from ``pending``, each under the lock.
* Funds return (``failed``, a ``refund`` entry) only when no money can have left:
  the provider refused the payout, or the last try's request never reached it.
  Every other last-try failure (a timeout, an unclear answer, a bug once the request
  may have left, a job whose worker died too often) may have paid, so the withdrawal
  becomes ``uncertain`` and keeps its reservation for an operator (``reconcile``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from functools import cache

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from csgoflip_jobs import keys
from csgoflip_jobs.engine.job_queue import JobQueue
from csgoflip_jobs.helpers.errors import BrokerError, LockError
from csgoflip_jobs.helpers.redlock import LockSignal, RedlockService, default_redlock
from csgoflip_jobs.payments.database import session_factory
from csgoflip_jobs.payments.errors import (
    InsufficientFundsError,
    PaymentError,
    PayoutNotSentError,
    PermanentPayoutError,
)
from csgoflip_jobs.payments.gateways import PayoutGateway, PayoutRequest, default_gateway
from csgoflip_jobs.payments.ledger import (
    change_balance,
    changed,
    move_withdrawal,
    require_amount,
    require_id,
)
from csgoflip_jobs.payments.models import Deposit, User, Withdrawal
from csgoflip_jobs.payments.reconcile import ReconcileReport, reconcile
from csgoflip_jobs.payments.stuck import (
    PAYABLE,
    STUCK_WITHDRAWAL_AFTER_S,
    WITHDRAWAL_PRIORITY,
    requeue_stuck_withdrawals,
    withdrawal_job_ids,
)

BALANCE_LOCK_MS = 5000
"""Lock on a user's balance; extended automatically while held."""

WITHDRAWAL_LOCK_MS = 5000
"""Lock on one withdrawal while it is paid; a dead holder's lock frees after this."""

WITHDRAWAL_DELAY_MS = 5000
"""A withdrawal is paid 5 s after its request (time to cancel), at WITHDRAWAL_PRIORITY."""

STUCK_WITHDRAWAL_SWEEP_S = 60
"""How often beat runs the stuck-withdrawal sweep."""

log = logging.getLogger(__name__)


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
            return _user(session, require_id("user_id", user_id)).balance_minor

    # --- deposits ----------------------------------------------------------------------
    def create_deposit(self, user_id: int, amount_minor: int) -> int:
        """Record money coming in (pending until confirmed); returns the deposit id."""
        user_id, amount = require_id("user_id", user_id), require_amount(amount_minor)
        with self._sessions() as session, session.begin():
            _user(session, user_id)
            deposit = Deposit(user_id=user_id, amount_minor=amount, status="pending")
            session.add(deposit)
            session.flush()
            return deposit.id

    def schedule_deposit_processing(self, deposit_id: int) -> str:
        """Enqueue ``process-deposit``; enqueuing the same deposit twice adds one job."""
        deposit_id = require_id("deposit_id", deposit_id)
        return self.queue.add(
            "process-deposit", {"deposit_id": deposit_id}, job_id=keys.deposit_job_id(deposit_id)
        )

    def confirm_deposit(self, deposit_id: int) -> bool:
        """Credit a pending deposit; False when it was already credited."""
        deposit_id = require_id("deposit_id", deposit_id)
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
            confirmed = changed(
                session,
                update(Deposit)
                .where(Deposit.id == deposit_id, Deposit.status == "pending")
                .values(status="confirmed", confirmed_at=datetime.now(UTC)),
            )
            if not confirmed:
                return False
            change_balance(session, signal, user_id, amount, "deposit", f"deposit:{deposit_id}")
        return True

    # --- withdrawals -------------------------------------------------------------------
    def request_withdrawal(self, user_id: int, amount_minor: int) -> int:
        """Reserve the funds, then schedule the payout (5 s delay, priority 1).

        With REDIS_MIN_REPLICAS_ACK set, this returns only once that many replicas hold
        the payout job, so a failover cannot lose it. Otherwise it raises
        BrokerNotReplicatedError: the withdrawal is recorded and its funds reserved, and
        its job is on the master; ``schedule_withdrawal_processing(id)`` adds it again
        safely (once), and the stuck-withdrawal sweep does should the job be lost.
        """
        user_id, amount = require_id("user_id", user_id), require_amount(amount_minor)
        with (
            self._redlock.lock(keys.balance_lock(user_id), BALANCE_LOCK_MS) as signal,
            self._sessions() as session,
            session.begin(),
        ):
            user = _user(session, user_id)
            if user.balance_minor < amount:
                raise InsufficientFundsError(
                    f"user {user_id} has {user.balance_minor}, cannot withdraw {amount}"
                )
            withdrawal = Withdrawal(user_id=user_id, amount_minor=amount, status="pending")
            session.add(withdrawal)
            session.flush()
            withdrawal_id = withdrawal.id
            change_balance(
                session, signal, user_id, -amount, "withdrawal", f"withdrawal:{withdrawal_id}"
            )
        # After the commit: a worker must find the row. Should this enqueue fail,
        # the withdrawal stays pending and the stuck-withdrawal sweep enqueues it.
        self.schedule_withdrawal_processing(withdrawal_id)
        return withdrawal_id

    def schedule_withdrawal_processing(self, withdrawal_id: int) -> str:
        """Enqueue ``process-withdrawal`` (5 s delay, priority 1); once per withdrawal."""
        withdrawal_id = require_id("withdrawal_id", withdrawal_id)
        return self.queue.add(
            "process-withdrawal",
            {"withdrawal_id": withdrawal_id},
            delay=WITHDRAWAL_DELAY_MS,
            priority=WITHDRAWAL_PRIORITY,
            job_id=keys.withdrawal_job_id(withdrawal_id),
        )

    def cancel_withdrawal(self, withdrawal_id: int) -> bool:
        """Cancel a withdrawal whose payout has not started, refunding it once.

        True when the withdrawal is cancelled (now, or by an earlier call); False when
        it is being paid, was paid, failed or is uncertain: nothing changed then. Its
        jobs are removed; one that runs anyway finds it cancelled and pays nothing.
        Raises LockError when the user's balance stays locked by another change for
        longer than the lock's retries (nothing changed: the withdrawal is still pending;
        ask again).
        """
        withdrawal_id = require_id("withdrawal_id", withdrawal_id)
        with ExitStack() as held:
            try:
                signal = held.enter_context(
                    self._redlock.lock(keys.withdrawal_lock(withdrawal_id), WITHDRAWAL_LOCK_MS)
                )
            except LockError as exc:
                # A worker holds the withdrawal's lock: its payout is under way.
                log.info("withdrawal %s not cancelled: %s", withdrawal_id, exc)
                return self.get_withdrawal(withdrawal_id).status == "cancelled"
            withdrawal = self.get_withdrawal(withdrawal_id)
            if withdrawal.status != "pending":
                return withdrawal.status == "cancelled"
            # Only the withdrawal's own lock means "too late"; a busy balance lock here
            # is a deposit or another change of the balance: raised, not answered False.
            self._refund(signal, withdrawal, "cancelled", "cancelled on request")
        for job_id in withdrawal_job_ids(withdrawal_id):
            try:
                self.queue.remove(job_id)
            except BrokerError as exc:  # harmless: the job would find it cancelled
                log.warning("withdrawal %s cancelled; job %s not removed: %s", withdrawal_id,
                            job_id, exc)  # fmt: skip
        return True

    def requeue_stuck_withdrawals(self, older_than_s: int = STUCK_WITHDRAWAL_AFTER_S) -> list[int]:
        """Enqueue again every withdrawal still unpaid ``older_than_s`` after its request
        (:func:`csgoflip_jobs.payments.stuck.requeue_stuck_withdrawals`); the ids enqueued."""
        return requeue_stuck_withdrawals(self._sessions, self.queue, older_than_s)

    def get_withdrawal(self, withdrawal_id: int) -> Withdrawal:
        """The withdrawal row (detached)."""
        withdrawal_id = require_id("withdrawal_id", withdrawal_id)
        with self._sessions() as session:
            withdrawal = session.get(Withdrawal, withdrawal_id)
            if withdrawal is None:
                raise PaymentError(f"unknown withdrawal {withdrawal_id}")
            return withdrawal

    def process_withdrawal(self, withdrawal_id: int, *, final_try: bool = True) -> str:
        """Pay a withdrawal once; returns its status afterwards.

        Invariant: the funds come back only when no request for it can have reached the
        provider. ``pending`` says none was sent; it turns ``processing`` just before one is.

        - The first request refused (PermanentPayoutError): failed, funds returned.
        - A request that never left (PayoutNotSentError) while none had: back to
          ``pending`` for the next try; on the ``final_try``, failed, funds returned.
        - Any other error, or a refusal or unsent request once an earlier try's may have
          left (``processing`` on entry: it timed out, or its worker died): raised to be
          retried; on the ``final_try`` (for a refusal, at once) ``uncertain``, the
          funds reserved for an operator.
        """
        withdrawal_id = require_id("withdrawal_id", withdrawal_id)
        lock = keys.withdrawal_lock(withdrawal_id)
        with self._redlock.lock(lock, WITHDRAWAL_LOCK_MS) as signal:
            withdrawal = self.get_withdrawal(withdrawal_id)
            if withdrawal.status not in PAYABLE:
                return withdrawal.status
            first_send = withdrawal.status == "pending"
            if first_send:
                # Before any money can move: from here on a cancel cannot refund it.
                self._move(signal, withdrawal_id, ("pending",), "processing")
            request = PayoutRequest(
                keys.withdrawal_job_id(withdrawal_id), withdrawal.user_id, withdrawal.amount_minor
            )
            try:
                reference = self.gateway.payout(request)
            except PermanentPayoutError as exc:
                if first_send:  # the only request was refused: nothing was paid
                    self._refund(signal, withdrawal, "failed", str(exc))
                else:
                    self._mark_uncertain(signal, withdrawal_id, f"after an earlier try: {exc}")
                raise
            except PayoutNotSentError as exc:
                if first_send and final_try:  # no request ever reached the provider
                    self._refund(signal, withdrawal, "failed", str(exc))
                elif first_send:  # still none has: the next try is a first send again
                    self._move(signal, withdrawal_id, ("processing",), "pending")
                elif final_try:
                    self._mark_uncertain(signal, withdrawal_id, f"after an earlier try: {exc}")
                raise
            except Exception as exc:
                # Anything else (no answer, an unclear answer, a bug once the request
                # may have left) may have paid: never refund on an ambiguous answer.
                if final_try:
                    self._mark_uncertain(signal, withdrawal_id, f"{type(exc).__name__}: {exc}")
                raise
            signal.check()
            self._move(signal, withdrawal_id, PAYABLE, "completed", payout_reference=reference)
            return "completed"

    def mark_uncertain(self, withdrawal_id: int, reason: str) -> str:
        """Leave an unfinished withdrawal for an operator (its payout may have left):
        ``uncertain``, funds still reserved, listed by ``reconcile``. Returns its status."""
        withdrawal_id = require_id("withdrawal_id", withdrawal_id)
        with self._redlock.lock(keys.withdrawal_lock(withdrawal_id), WITHDRAWAL_LOCK_MS) as signal:
            status = self.get_withdrawal(withdrawal_id).status
            if status not in PAYABLE:
                return status
            self._mark_uncertain(signal, withdrawal_id, reason)
            return "uncertain"

    def _mark_uncertain(self, signal: LockSignal, withdrawal_id: int, reason: str) -> None:
        self._move(signal, withdrawal_id, PAYABLE, "uncertain", failure_reason=reason[:500])
        log.error("withdrawal %s is uncertain (%s); funds stay reserved for review",
                  withdrawal_id, reason)  # fmt: skip

    def _refund(self, signal: LockSignal, withdrawal: Withdrawal, status: str, reason: str) -> None:
        """End the withdrawal as ``status`` (failed or cancelled) and return its funds,
        in one transaction, under the balance lock too (the balance changes)."""
        sources = ("pending",) if status == "cancelled" else PAYABLE
        with (
            self._redlock.lock(
                keys.balance_lock(withdrawal.user_id), BALANCE_LOCK_MS
            ) as balance_signal,
            self._sessions() as session,
            session.begin(),
        ):
            move_withdrawal(
                session, signal, withdrawal.id, sources, status, failure_reason=reason[:500]
            )
            change_balance(
                session,
                balance_signal,
                withdrawal.user_id,
                withdrawal.amount_minor,
                "refund",
                f"withdrawal:{withdrawal.id}",
            )
        log.warning("withdrawal %s %s (%s); funds returned", withdrawal.id, status, reason)

    def _move(
        self,
        signal: LockSignal,
        withdrawal_id: int,
        sources: Sequence[str],
        status: str,
        **values: str,
    ) -> None:
        with self._sessions() as session, session.begin():
            move_withdrawal(session, signal, withdrawal_id, sources, status, **values)

    # --- reconciliation ------------------------------------------------------------------
    def reconcile(self) -> ReconcileReport:
        """Check every balance against its ledger and payouts against completed withdrawals."""
        return reconcile(self._sessions, self.gateway)


@cache
def _service_for(pid: int) -> PaymentService:
    return PaymentService()


def default_payment_service() -> PaymentService:
    """This process's PaymentService (tasks share its connections instead of opening more)."""
    return _service_for(os.getpid())


def _user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise PaymentError(f"unknown user {user_id}")
    return user

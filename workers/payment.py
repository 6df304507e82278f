"""Tasks of the ``payment`` queue: thin wrappers over PaymentService.

Bad job data (a malformed or unknown id) and refused payouts fail the job at
once; gateway outages are retried (3 tries, 1 s and 2 s apart). Funds come
back only when no request can have reached the provider; otherwise the
withdrawal is left uncertain (PaymentService.process_withdrawal). A withdrawal
whose lock another worker holds waits, without using a try, until that lock
can expire.
A withdrawal whose job keeps killing its worker is left uncertain for an operator
(its payout may have left), never refunded blindly.
"""

from __future__ import annotations

from typing import Any

from csgoflip_jobs import UnrecoverableError, app
from csgoflip_jobs.engine.job_task import STALLED_REASON, JobTask
from csgoflip_jobs.helpers.errors import LockError
from csgoflip_jobs.payments.errors import PaymentError, PermanentPayoutError
from csgoflip_jobs.payments.service import (
    BALANCE_LOCK_MS,
    WITHDRAWAL_LOCK_MS,
    default_payment_service,
)
from csgoflip_jobs.payments.stuck import STUCK_WITHDRAWAL_AFTER_S


class WithdrawalTask(JobTask):
    """The withdrawal job: when it fails for stalling, the withdrawal becomes uncertain."""

    def on_stall_limit(self, withdrawal_id: int, *args: Any, **kwargs: Any) -> None:
        """The worker died mid-run more often than allowed: the money may have left."""
        default_payment_service().mark_uncertain(withdrawal_id, STALLED_REASON)


@app.task(name="process-withdrawal", bind=True, base=WithdrawalTask)
def process_withdrawal(self: Any, withdrawal_id: int) -> str:
    """Pay a withdrawal once."""
    try:
        return default_payment_service().process_withdrawal(
            withdrawal_id, final_try=self.is_final_try
        )
    except (PaymentError, PermanentPayoutError) as exc:
        raise UnrecoverableError(str(exc)) from exc
    except LockError:
        # Someone else is paying it (or died doing so): look again once that lock can expire.
        self.defer(WITHDRAWAL_LOCK_MS)
        raise


@app.task(name="process-deposit", bind=True)
def process_deposit(self: Any, deposit_id: int) -> bool:
    """Credit a deposit once; False when it had been credited already."""
    try:
        return default_payment_service().confirm_deposit(deposit_id)
    except PaymentError as exc:
        raise UnrecoverableError(str(exc)) from exc
    except LockError:
        self.defer(BALANCE_LOCK_MS)
        raise


@app.task(name="requeue-stuck-withdrawals")
def requeue_stuck_withdrawals(older_than_s: int = STUCK_WITHDRAWAL_AFTER_S) -> list[int]:
    """Enqueue again the withdrawals still pending too long (run by beat)."""
    return default_payment_service().requeue_stuck_withdrawals(older_than_s)

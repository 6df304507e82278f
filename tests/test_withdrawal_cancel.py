"""Cancelling a withdrawal: refunded exactly once before its payout starts, never both
cancelled and paid when racing a worker, and a withdrawal whose job stalls out is left
uncertain, never refunded blindly."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

import pytest
import redis

from csgoflip_jobs import JobQueue, LockError, RedlockService, keys
from csgoflip_jobs.payments.gateways import SandboxGateway
from csgoflip_jobs.payments.service import PaymentService
from tests.support.payment_helpers import (
    count_payouts,
    funded_user,
    ledger_entries,
    payment_service,
)
from tests.support.polling import nothing_left, wait_until
from tests.support.workers import WorkerProcess

RACES = 24
"""Withdrawals cancelled at the moment their jobs start, per database kind."""


@pytest.fixture
def service(database_url: str, redis_client: redis.Redis) -> PaymentService:
    return payment_service(database_url)


def test_a_withdrawal_cancelled_during_its_delay_is_refunded_once_and_never_paid(
    service: PaymentService, database_url: str, workers: Callable[..., WorkerProcess]
) -> None:
    user_id = funded_user(service, 1_000)
    withdrawal_id = service.request_withdrawal(user_id, 400)  # job due in 5 s
    assert service.get_balance(user_id) == 600
    assert service.cancel_withdrawal(withdrawal_id) is True
    assert service.cancel_withdrawal(withdrawal_id) is True  # idempotent, refunds once
    queue = JobQueue("payment")
    assert queue.get_job(f"withdrawal:{withdrawal_id}") is None  # its job is gone
    workers(env={"DATABASE_URL": database_url})
    time.sleep(6.0)  # past the job's due time
    withdrawal = service.get_withdrawal(withdrawal_id)
    assert withdrawal.status == "cancelled"
    assert count_payouts(service, withdrawal_id) == 0
    assert ledger_entries(service, f"withdrawal:{withdrawal_id}") == [
        ("withdrawal", -400),
        ("refund", 400),
    ]
    assert service.get_balance(user_id) == 1_000
    assert service.reconcile().ok


def test_cancel_racing_the_payout_ends_cancelled_or_paid_never_both_never_neither(
    service: PaymentService, database_url: str, workers: Callable[..., WorkerProcess]
) -> None:
    queue = JobQueue("payment")
    env = {"DATABASE_URL": database_url}
    # Workers first: started after the withdrawals, two of them could take longer than
    # a withdrawal's delay on a loaded machine, and a job already due cannot be promoted.
    workers(name="race1", env=env, concurrency=2)
    workers(name="race2", env=env, concurrency=2)
    user_id = funded_user(service, 100 * RACES)
    ids = [service.request_withdrawal(user_id, 100) for _ in range(RACES)]
    for withdrawal_id in ids:
        assert queue.promote(f"withdrawal:{withdrawal_id}")  # due now
    cancelled: dict[int, bool] = {}

    def cancel(withdrawal_id: int) -> None:
        time.sleep(random.uniform(0, 0.4))  # spread over the moments the jobs start
        cancelled[withdrawal_id] = service.cancel_withdrawal(withdrawal_id)

    threads = [threading.Thread(target=cancel, args=(w,)) for w in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    wait_until(lambda: nothing_left(queue), 60, interval=0.2)
    outcomes = {"cancelled": 0, "completed": 0}
    for withdrawal_id in ids:
        status = service.get_withdrawal(withdrawal_id).status
        paid = count_payouts(service, withdrawal_id)
        entries = ledger_entries(service, f"withdrawal:{withdrawal_id}")
        assert status in outcomes, (withdrawal_id, status)
        outcomes[status] += 1
        assert cancelled[withdrawal_id] == (status == "cancelled")
        if status == "cancelled":
            assert (paid, entries) == (0, [("withdrawal", -100), ("refund", 100)])
        else:
            assert (paid, entries) == (1, [("withdrawal", -100)])
    assert service.get_balance(user_id) == 100 * outcomes["cancelled"]
    assert service.reconcile().ok
    print(f"cancel race: {outcomes}")


def test_a_withdrawal_whose_job_stalls_out_is_left_uncertain(
    service: PaymentService, database_url: str, workers: Callable[..., WorkerProcess]
) -> None:
    """The worker is killed inside the payout; with MAX_STALLED_COUNT=0 the redelivered
    job fails for stalling instead of running: the money may have left, so the
    withdrawal is uncertain, keeps its reservation, and reconcile lists it."""
    user_id = funded_user(service, 1_000)
    assert isinstance(service.gateway, SandboxGateway)
    service.gateway.set_plan(user_id, delay_ms=4000)
    withdrawal_id = service.request_withdrawal(user_id, 300)
    JobQueue("payment").promote(f"withdrawal:{withdrawal_id}")
    env = {"DATABASE_URL": database_url, "VISIBILITY_TIMEOUT_S": "5", "MAX_STALLED_COUNT": "0"}
    first = workers(name="stall1", env=env)
    wait_until(lambda: count_payouts(service, withdrawal_id) == 1, 15)
    first.kill()  # mid-payout: the money has left, the job never finished
    workers(name="stall2", env=env)
    job = JobQueue("payment").wait_until_finished
    with pytest.raises(Exception, match="stalled more than allowable limit"):
        job(f"withdrawal:{withdrawal_id}", 60)
    withdrawal = service.get_withdrawal(withdrawal_id)
    assert withdrawal.status == "uncertain"
    assert ledger_entries(service, f"withdrawal:{withdrawal_id}") == [("withdrawal", -300)]
    report = service.reconcile()
    assert report.uncertain_withdrawals == [withdrawal_id] and not report.ok


def test_a_busy_balance_is_no_answer_of_too_late(
    database_url: str, redis_client: redis.Redis
) -> None:
    """Only the withdrawal's own lock means its payout began. A deposit holding the
    balance lock made cancel_withdrawal answer False ("too late") for a pending one."""
    impatient = RedlockService([redis_client], retry_count=1)
    base = payment_service(database_url)
    service = PaymentService(base.sessions, base.gateway, impatient)
    user_id = funded_user(service, 1_000)
    withdrawal_id = service.request_withdrawal(user_id, 400)
    with (
        impatient.lock(keys.balance_lock(user_id), 5_000),  # e.g. a deposit under way
        pytest.raises(LockError, match=f"could not lock user:{user_id}:balance"),
    ):
        service.cancel_withdrawal(withdrawal_id)
    assert service.get_withdrawal(withdrawal_id).status == "pending"
    assert service.get_balance(user_id) == 600
    assert service.cancel_withdrawal(withdrawal_id) is True
    assert service.get_balance(user_id) == 1_000
    with impatient.lock(keys.withdrawal_lock(withdrawal_id), 5_000):
        assert service.cancel_withdrawal(withdrawal_id) is True  # cancelled already

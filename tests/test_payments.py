"""PaymentService and the payment queue, on SQLite and PostgreSQL, with real workers."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

from csgoflip_jobs import JobQueue
from csgoflip_jobs.helpers.redlock import LockSignal, RedlockService
from csgoflip_jobs.payments.errors import InsufficientFundsError, PaymentError, StaleLockError
from csgoflip_jobs.payments.gateways import SandboxGateway
from csgoflip_jobs.payments.ledger import change_balance
from csgoflip_jobs.payments.service import PaymentService
from tests.support.payment_helpers import (
    count_payouts,
    funded_user,
    ledger_entries,
    payment_service,
)
from tests.support.polling import wait_for_state, wait_until
from tests.support.workers import WorkerProcess


@pytest.fixture
def service(database_url: str, redis_client: redis.Redis) -> PaymentService:
    return payment_service(database_url)


def sandbox(service: PaymentService) -> SandboxGateway:
    assert isinstance(service.gateway, SandboxGateway)
    return service.gateway


def test_a_deposit_is_credited_once(service: PaymentService) -> None:
    user_id = service.create_user()
    deposit_id = service.create_deposit(user_id, 5_000)
    assert service.get_balance(user_id) == 0
    assert service.confirm_deposit(deposit_id) is True
    assert service.confirm_deposit(deposit_id) is False
    assert service.get_balance(user_id) == 5_000
    assert ledger_entries(service, f"deposit:{deposit_id}") == [("deposit", 5_000)]
    assert service.reconcile().ok


def test_a_withdrawal_reserves_funds_and_is_scheduled_like_the_original(
    service: PaymentService,
) -> None:
    user_id = funded_user(service, 10_000)
    withdrawal_id = service.request_withdrawal(user_id, 2_500)
    assert service.get_balance(user_id) == 7_500
    assert ledger_entries(service, f"withdrawal:{withdrawal_id}") == [("withdrawal", -2_500)]
    job = JobQueue("payment").get_job(f"withdrawal:{withdrawal_id}")
    assert job is not None and job.name == "process-withdrawal"
    assert job.data == {"withdrawal_id": withdrawal_id}
    assert job.state == "delayed" and job.opts["delay"] == 5000 and job.opts["priority"] == 1
    # Scheduling again (the stuck-withdrawal sweep) does not add a second job.
    service.schedule_withdrawal_processing(withdrawal_id)
    assert JobQueue("payment").get_job_counts()["delayed"] == 1


def test_processing_pays_once_however_often_it_runs(service: PaymentService) -> None:
    user_id = funded_user(service, 1_000)
    withdrawal_id = service.request_withdrawal(user_id, 1_000)
    assert service.process_withdrawal(withdrawal_id) == "completed"
    assert service.process_withdrawal(withdrawal_id) == "completed"
    assert count_payouts(service, withdrawal_id) == 1
    assert service.get_withdrawal(withdrawal_id).payout_reference
    report = service.reconcile()
    assert report.ok and report.payouts == 1 and report.completed_withdrawals == 1


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda s, u: s.request_withdrawal(u, 0),
            PaymentError,
            "minor units from 1 to 9223372036854775807, not 0",
        ),
        (
            lambda s, u: s.request_withdrawal(u, -5),
            PaymentError,
            "minor units from 1 to 9223372036854775807, not -5",
        ),
        (
            lambda s, u: s.request_withdrawal(u, 10.5),
            PaymentError,
            "amount must be a whole number of minor units",
        ),
        (lambda s, u: s.request_withdrawal(u, 1_001), InsufficientFundsError, "cannot withdraw"),
        (lambda s, u: s.request_withdrawal(99_999, 5), PaymentError, "unknown user 99999"),
        (
            lambda s, u: s.request_withdrawal("7", 5),
            PaymentError,
            "must be a whole number from 1 to 2147483647",
        ),
        (
            lambda s, u: s.request_withdrawal(True, 5),
            PaymentError,
            "must be a whole number from 1 to 2147483647",
        ),
        (
            lambda s, u: s.create_deposit(u, 0),
            PaymentError,
            "minor units from 1 to 9223372036854775807, not 0",
        ),
        (lambda s, u: s.confirm_deposit(12_345), PaymentError, "unknown deposit"),
        (
            lambda s, u: s.process_withdrawal(-1),
            PaymentError,
            "must be a whole number from 1 to 2147483647",
        ),
        (lambda s, u: s.process_withdrawal(424_242), PaymentError, "unknown withdrawal"),
    ],
)
def test_bad_input_is_a_clear_error_and_changes_nothing(
    service: PaymentService,
    call: Callable[[PaymentService, int], object],
    error: type[Exception],
    message: str,
) -> None:
    user_id = funded_user(service, 1_000)
    with pytest.raises(error, match=message):
        call(service, user_id)
    assert service.get_balance(user_id) == 1_000
    assert JobQueue("payment").get_job_counts()["delayed"] == 0
    assert service.reconcile().ok


def test_the_ledger_is_append_only_and_balances_never_negative(service: PaymentService) -> None:
    funded_user(service, 100)
    with service.sessions() as session, pytest.raises(DBAPIError, match="append-only"):
        session.execute(text("UPDATE ledger_entries SET amount_minor = 1"))
    with service.sessions() as session, pytest.raises(DBAPIError, match="append-only"):
        session.execute(text("DELETE FROM ledger_entries"))
    with service.sessions() as session, pytest.raises(IntegrityError):
        session.execute(text("UPDATE users SET balance_minor = -1"))
        session.commit()


def test_a_holder_whose_lock_expired_cannot_write(
    service: PaymentService, redis_client: redis.Redis
) -> None:
    user_id = funded_user(service, 1_000)
    redlock = RedlockService([redis_client])
    stale = LockSignal(redlock.acquire(f"user:{user_id}:balance", 100))
    wait_until(lambda: stale.lock.remaining_ms < -50, 2)  # it expired while "paused"
    fresh = LockSignal(redlock.acquire(f"user:{user_id}:balance", 5000))
    with service.sessions() as session, session.begin():
        change_balance(session, fresh, user_id, -100, "withdrawal", "manual:1")
    with service.sessions() as session, session.begin(), pytest.raises(StaleLockError):
        change_balance(session, stale, user_id, -100, "withdrawal", "manual:2")
    assert service.get_balance(user_id) == 900
    assert ledger_entries(service, "manual:2") == []


def test_gateway_failing_twice_then_succeeding_pays_once_on_the_third_try(
    service: PaymentService, database_url: str, workers: Callable[..., WorkerProcess]
) -> None:
    user_id = funded_user(service, 3_000)
    sandbox(service).set_plan(user_id, failures=2)
    withdrawal_id = service.request_withdrawal(user_id, 3_000)
    workers(env={"DATABASE_URL": database_url})
    job = wait_for_state(JobQueue("payment"), f"withdrawal:{withdrawal_id}", "completed", 20)
    assert job.attempts_made == 3 and job.returnvalue == "completed"
    assert count_payouts(service, withdrawal_id) == 1
    assert service.get_withdrawal(withdrawal_id).status == "completed"
    assert service.get_balance(user_id) == 0
    assert service.reconcile().ok


def test_gateway_failing_always_fails_after_3_tries_and_returns_the_funds(
    service: PaymentService, database_url: str, workers: Callable[..., WorkerProcess]
) -> None:
    user_id = funded_user(service, 3_000)
    sandbox(service).set_plan(user_id, failures=-1)
    withdrawal_id = service.request_withdrawal(user_id, 2_000)
    workers(env={"DATABASE_URL": database_url})
    job = wait_for_state(JobQueue("payment"), f"withdrawal:{withdrawal_id}", "failed", 20)
    assert job.attempts_made == 3
    assert "sandbox outage" in (job.failed_reason or "")
    withdrawal = service.get_withdrawal(withdrawal_id)
    assert withdrawal.status == "failed" and "sandbox outage" in (withdrawal.failure_reason or "")
    assert service.get_balance(user_id) == 3_000
    assert ledger_entries(service, f"withdrawal:{withdrawal_id}") == [
        ("withdrawal", -2_000),
        ("refund", 2_000),
    ]
    assert count_payouts(service, withdrawal_id) == 0
    assert service.reconcile().ok


def test_a_refused_payout_fails_at_once_and_returns_the_funds(
    service: PaymentService, database_url: str, workers: Callable[..., WorkerProcess]
) -> None:
    user_id = funded_user(service, 500)
    sandbox(service).set_plan(user_id, failures=1, permanent=True)
    withdrawal_id = service.request_withdrawal(user_id, 500)
    workers(env={"DATABASE_URL": database_url})
    job = wait_for_state(JobQueue("payment"), f"withdrawal:{withdrawal_id}", "failed", 15)
    assert job.attempts_made == 1
    assert job.failed_reason == f"UnrecoverableError: sandbox refused the payout of user {user_id}"
    assert service.get_balance(user_id) == 500
    assert service.reconcile().ok


def test_a_job_with_bad_data_fails_once_with_its_reason(
    service: PaymentService, database_url: str, workers: Callable[..., WorkerProcess]
) -> None:
    workers(env={"DATABASE_URL": database_url})
    queue = JobQueue("payment")
    unknown = queue.add("process-withdrawal", {"withdrawal_id": 777})
    malformed = queue.add("process-deposit", {"deposit_id": "abc"})
    for job_id, reason in (
        (unknown, "unknown withdrawal 777"),
        (malformed, "deposit_id must be a whole number from 1 to 2147483647"),
    ):
        job = wait_for_state(queue, job_id, "failed", 10)
        assert job.attempts_made == 1
        assert job.failed_reason == f"UnrecoverableError: {reason}" + (
            ", not 'abc'" if job_id == malformed else ""
        )


def test_a_deposit_job_credits_once(
    service: PaymentService, database_url: str, workers: Callable[..., WorkerProcess]
) -> None:
    user_id = service.create_user()
    deposit_id = service.create_deposit(user_id, 1_234)
    service.schedule_deposit_processing(deposit_id)
    service.schedule_deposit_processing(deposit_id)  # same job id: enqueued once
    JobQueue("payment").add("process-deposit", {"deposit_id": deposit_id})  # a true duplicate
    workers(env={"DATABASE_URL": database_url})
    wait_until(lambda: JobQueue("payment").get_job_counts()["completed"] == 2, 15)
    assert service.get_balance(user_id) == 1_234
    assert ledger_entries(service, f"deposit:{deposit_id}") == [("deposit", 1_234)]

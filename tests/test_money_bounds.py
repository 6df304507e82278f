"""Amounts, ids and balances stay within what the database holds, on both kinds.

A balance change that would pass BIGINT's maximum is refused with a PaymentError and
changes nothing (PostgreSQL would raise mid-job; SQLite silently stored a float), and
SQLite refuses any non-integer balance written behind the service's back.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from csgoflip_jobs import JobQueue
from csgoflip_jobs.payments.errors import PaymentError
from csgoflip_jobs.payments.models import MAX_ID, MAX_MINOR_UNITS, Deposit
from csgoflip_jobs.payments.service import PaymentService
from tests.support.payment_helpers import funded_user, payment_service
from tests.support.polling import wait_for_state
from tests.support.workers import WorkerProcess


@pytest.fixture
def service(database_url: str, redis_client: redis.Redis) -> PaymentService:
    return payment_service(database_url)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s, u: s.create_deposit(u, 2**63), "from 1 to 9223372036854775807, not 9223"),
        (lambda s, u: s.request_withdrawal(u, 10**400), "minor units from 1 to .*a huge number"),
        (lambda s, u: s.create_deposit(10**19, 5), "user_id must be a whole number from 1 to"),
        (lambda s, u: s.get_withdrawal(MAX_ID + 1), "withdrawal_id must be a whole number"),
        (lambda s, u: s.confirm_deposit(2**31), "deposit_id must be a whole number"),
    ],
)
def test_out_of_range_numbers_are_refused_before_the_database_sees_them(
    service: PaymentService, call: Callable[[PaymentService, int], object], message: str
) -> None:
    user_id = funded_user(service, 100)
    with pytest.raises(PaymentError, match=message):
        call(service, user_id)
    assert service.get_balance(user_id) == 100 and service.reconcile().ok


def test_a_deposit_that_would_overflow_the_balance_changes_nothing(
    service: PaymentService,
) -> None:
    user_id = funded_user(service, MAX_MINOR_UNITS)
    deposit_id = service.create_deposit(user_id, 1)
    with pytest.raises(PaymentError, match="cannot take 1 more minor units"):
        service.confirm_deposit(deposit_id)
    assert service.get_balance(user_id) == MAX_MINOR_UNITS
    with service.sessions() as session:
        kind = session.execute(text("SELECT balance_minor FROM users")).scalar_one()
        assert isinstance(kind, int)  # SQLite had stored 9.223372036854776e+18
        assert session.get(Deposit, deposit_id).status == "pending"  # type: ignore[union-attr]
    assert service.reconcile().ok  # it crashed with "integer overflow" on SQLite
    # The balance still moves down, and back up to the maximum.
    withdrawal_id = service.request_withdrawal(user_id, MAX_MINOR_UNITS)
    assert service.cancel_withdrawal(withdrawal_id)
    assert service.get_balance(user_id) == MAX_MINOR_UNITS and service.reconcile().ok


def test_the_database_never_stores_a_balance_that_is_not_an_integer(
    service: PaymentService, database_url: str
) -> None:
    """Writes behind the service's back: SQLite refuses them (its triggers, migration
    0003); PostgreSQL's BIGINT refuses the overflow and rounds 1.5 to an integer."""
    user_id = funded_user(service, MAX_MINOR_UNITS)
    with service.sessions() as session, pytest.raises(DBAPIError):
        session.execute(text("UPDATE users SET balance_minor = balance_minor + 1"))
        session.commit()  # on SQLite this made a REAL of 9.223372036854776e+18
    assert service.get_balance(user_id) == MAX_MINOR_UNITS
    with service.sessions() as session:
        try:
            session.execute(text("UPDATE users SET balance_minor = 1.5"))
            session.commit()
            refused = False
        except DBAPIError:
            refused = True
        stored = session.execute(text("SELECT balance_minor FROM users")).scalar_one()
    assert isinstance(stored, int)
    assert refused == database_url.startswith("sqlite")


def test_an_overflowing_deposit_job_fails_at_once_with_its_reason(
    service: PaymentService, database_url: str, workers: Callable[..., WorkerProcess]
) -> None:
    user_id = funded_user(service, MAX_MINOR_UNITS - 5)
    deposit_id = service.create_deposit(user_id, 6)
    workers(env={"DATABASE_URL": database_url}, queues="payment")
    job_id = service.schedule_deposit_processing(deposit_id)
    job = wait_for_state(JobQueue("payment"), job_id, "failed", 20)
    assert job.attempts_made == 1 and "cannot take 6 more minor units" in (job.failed_reason or "")
    assert service.get_balance(user_id) == MAX_MINOR_UNITS - 5

"""What each answer of a payment provider does to a withdrawal, on both databases.

A real HTTP provider on 127.0.0.1 answers each payout as scripted; the withdrawal's
final status, its ledger entries and the balance are read back. The rule under test:
once a payout request may have reached the provider, only an explicit refusal returns
the funds; a 2xx is a payout made whatever its body; anything ambiguous on the last
try leaves the withdrawal ``uncertain`` with its funds reserved.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from csgoflip_jobs import JobQueue
from csgoflip_jobs.payments.errors import (
    PayoutError,
    PayoutNotSentError,
    PermanentPayoutError,
    TransientPayoutError,
)
from csgoflip_jobs.payments.gateways import UNKNOWN_REFERENCE, HttpGateway, PayoutRequest
from csgoflip_jobs.payments.service import PaymentService
from tests.support.payment_helpers import funded_user, ledger_entries, payment_service
from tests.support.payout_provider import Answer, Provider, running_provider
from tests.support.polling import wait_for_state, wait_until
from tests.support.redis_servers import free_port
from tests.support.workers import WorkerProcess

AMOUNT = 2_000
PAID = [("withdrawal", -AMOUNT)]
REFUNDED = [("withdrawal", -AMOUNT), ("refund", AMOUNT)]

OUTCOMES = {
    "200 JSON": (Answer(200), "completed", PAID, "po_0"),
    "201 with a list": (Answer(201, b'["po_9"]'), "completed", PAID, UNKNOWN_REFERENCE),
    "202 empty": (Answer(202, b""), "completed", PAID, UNKNOWN_REFERENCE),
    "204": (Answer(204, b""), "completed", PAID, UNKNOWN_REFERENCE),
    "200 not JSON": (Answer(200, b"<html>ok</html>", "text/html"), "completed", PAID,
                     UNKNOWN_REFERENCE),
    "302": (Answer(302, b""), "uncertain", PAID, None),
    "400": (Answer(400), "failed", REFUNDED, None),
    "409": (Answer(409), "uncertain", PAID, None),
    "429": (Answer(429), "uncertain", PAID, None),
    "500": (Answer(500), "uncertain", PAID, None),
    "a slow answer": (Answer(201, delay_s=1.0), "uncertain", PAID, None),
    "a dropped connection": (Answer(drop=True), "uncertain", PAID, None),
}  # fmt: skip


@pytest.fixture
def provider() -> Iterator[Provider]:
    with running_provider() as server:
        yield server


def http_service(database_url: str, url: str) -> PaymentService:
    sandbox = payment_service(database_url)
    return PaymentService(sandbox.sessions, HttpGateway(url, timeout_s=0.4))


def withdrawal_of(service: PaymentService) -> tuple[int, int]:
    """A user who asked to withdraw everything they had: (user id, withdrawal id)."""
    user_id = funded_user(service, AMOUNT)
    return user_id, service.request_withdrawal(user_id, AMOUNT)


def settle(service: PaymentService, withdrawal_id: int, final_try: bool = True) -> str:
    """Run the payout as the job's try would; the status after it."""
    try:
        return service.process_withdrawal(withdrawal_id, final_try=final_try)
    except PayoutError:
        return service.get_withdrawal(withdrawal_id).status


@pytest.mark.parametrize("answer", OUTCOMES, ids=list(OUTCOMES))
def test_each_answer_on_the_last_try(
    answer: str, provider: Provider, database_url: str, redis_client: redis.Redis
) -> None:
    scripted, status, ledger, reference = OUTCOMES[answer]
    provider.answers = [scripted]
    service = http_service(database_url, provider.url)
    user_id, withdrawal_id = withdrawal_of(service)
    assert settle(service, withdrawal_id) == status
    withdrawal = service.get_withdrawal(withdrawal_id)
    assert ledger_entries(service, f"withdrawal:{withdrawal_id}") == ledger
    assert service.get_balance(user_id) == (AMOUNT if status == "failed" else 0)
    assert withdrawal.payout_reference == reference
    assert len(provider.requests) == 1
    if status == "uncertain":
        assert service.reconcile().uncertain_withdrawals == [withdrawal_id]


def test_a_provider_nobody_can_reach_refunds_on_the_last_try(
    database_url: str, redis_client: redis.Redis
) -> None:
    service = http_service(database_url, f"http://127.0.0.1:{free_port()}/payouts")
    user_id, withdrawal_id = withdrawal_of(service)
    with pytest.raises(PayoutNotSentError):
        service.process_withdrawal(withdrawal_id, final_try=False)
    assert service.get_withdrawal(withdrawal_id).status == "pending"  # none was ever sent
    with pytest.raises(PayoutNotSentError):
        service.process_withdrawal(withdrawal_id, final_try=True)
    assert service.get_withdrawal(withdrawal_id).status == "failed"
    assert service.get_balance(user_id) == AMOUNT
    assert service.reconcile().ok


@pytest.mark.parametrize(("then", "final_try"), [("unreachable", True), (401, False), (422, False)])
def test_after_a_try_the_provider_may_have_paid_nothing_refunds(
    then: str | int,
    final_try: bool,
    provider: Provider,
    database_url: str,
    redis_client: redis.Redis,
) -> None:
    """The first try got no answer in time though the provider paid; a later try that
    could not connect, or was refused (a 401 after a key rotation), refunded it."""
    provider.answers = [Answer(201, delay_s=1.0)]  # paid, answered after the timeout
    unreachable = f"http://127.0.0.1:{free_port()}/payouts"
    if isinstance(then, int):
        provider.answers.append(Answer(then))
    service = http_service(database_url, provider.url)
    user_id, withdrawal_id = withdrawal_of(service)
    with pytest.raises(TransientPayoutError):
        service.process_withdrawal(withdrawal_id, final_try=False)
    wait_until(lambda: len(provider.payouts) == 1, 5)  # the provider did pay
    later = http_service(database_url, unreachable) if then == "unreachable" else service
    with pytest.raises(PayoutError):
        later.process_withdrawal(withdrawal_id, final_try=final_try)
    withdrawal = service.get_withdrawal(withdrawal_id)
    assert withdrawal.status == "uncertain", withdrawal.failure_reason
    assert "after an earlier try" in (withdrawal.failure_reason or "")
    assert ledger_entries(service, f"withdrawal:{withdrawal_id}") == PAID
    assert service.get_balance(user_id) == 0
    assert service.reconcile().uncertain_withdrawals == [withdrawal_id]


def test_an_ambiguous_answer_before_the_last_try_is_paid_by_the_next(
    provider: Provider, database_url: str, redis_client: redis.Redis
) -> None:
    provider.answers = [Answer(500)]
    service = http_service(database_url, provider.url)
    user_id, withdrawal_id = withdrawal_of(service)
    with pytest.raises(TransientPayoutError):
        service.process_withdrawal(withdrawal_id, final_try=False)
    assert service.get_withdrawal(withdrawal_id).status == "processing"
    assert service.process_withdrawal(withdrawal_id, final_try=True) == "completed"
    assert {r["key"] for r in provider.requests} == {f"withdrawal:{withdrawal_id}"}
    assert len(provider.payouts) == 1 and service.get_balance(user_id) == 0


class BreaksAfterSending:
    """A gateway with a bug after the request went out (the provider paid)."""

    def __init__(self, url: str) -> None:
        self._inner = HttpGateway(url, timeout_s=1.0)

    def payout(self, request: PayoutRequest) -> str:
        self._inner.payout(request)
        raise RuntimeError("a bug once the payout was sent")


def test_a_bug_after_sending_never_refunds(
    provider: Provider, database_url: str, redis_client: redis.Redis
) -> None:
    sandbox = payment_service(database_url)
    service = PaymentService(sandbox.sessions, BreaksAfterSending(provider.url))
    user_id, withdrawal_id = withdrawal_of(service)
    with pytest.raises(RuntimeError):
        service.process_withdrawal(withdrawal_id, final_try=True)
    withdrawal = service.get_withdrawal(withdrawal_id)
    assert withdrawal.status == "uncertain" and "RuntimeError" in (withdrawal.failure_reason or "")
    assert service.get_balance(user_id) == 0 and len(provider.payouts) == 1


def test_a_refusal_fails_at_once(
    provider: Provider, database_url: str, redis_client: redis.Redis
) -> None:
    provider.answers = [Answer(422)]
    service = http_service(database_url, provider.url)
    user_id, withdrawal_id = withdrawal_of(service)
    with pytest.raises(PermanentPayoutError):
        service.process_withdrawal(withdrawal_id, final_try=False)
    assert service.get_withdrawal(withdrawal_id).status == "failed"
    assert service.get_balance(user_id) == AMOUNT


@pytest.mark.parametrize(
    ("always", "status", "tries"),
    [(Answer(204, b""), "completed", 1), (Answer(500), "uncertain", 3)],
)
def test_the_payout_job_on_a_real_worker(
    always: Answer,
    status: str,
    tries: int,
    provider: Provider,
    database_url: str,
    redis_client: redis.Redis,
    workers: Callable[..., WorkerProcess],
) -> None:
    provider.always = always
    service = http_service(database_url, provider.url)
    user_id, withdrawal_id = withdrawal_of(service)
    env: dict[str, Any] = {"PAYOUT_GATEWAY": "http", "PAYOUT_URL": provider.url}
    workers(env={"DATABASE_URL": database_url, **env})
    final = "completed" if status == "completed" else "failed"
    job = wait_for_state(JobQueue("payment"), f"withdrawal:{withdrawal_id}", final, 30)
    assert job.attempts_made == tries and len(provider.requests) == tries
    assert service.get_withdrawal(withdrawal_id).status == status
    assert service.get_balance(user_id) == 0  # paid, or reserved for an operator

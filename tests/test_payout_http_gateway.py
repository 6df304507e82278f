"""The http payout gateway against a local HTTP server (127.0.0.1 only)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from csgoflip_jobs.payments.errors import (
    PayoutNotSentError,
    PayoutTimeoutError,
    PermanentPayoutError,
    TransientPayoutError,
)
from csgoflip_jobs.payments.gateways import HttpGateway, PayoutRequest
from tests.support.payout_provider import Provider, running_provider


@pytest.fixture
def provider() -> Iterator[Provider]:
    with running_provider() as server:
        yield server


def gateway_for(provider: Provider, timeout_s: float = 2.0) -> HttpGateway:
    return HttpGateway(provider.url, timeout_s)


REQUEST = PayoutRequest("withdrawal:42", user_id=7, amount_minor=1_500)


def test_pays_with_the_idempotency_key_and_the_provider_dedupes(provider: Provider) -> None:
    gateway = gateway_for(provider)
    assert gateway.payout(REQUEST) == "po_0"
    assert gateway.payout(REQUEST) == "po_0"
    assert len(provider.payouts) == 1
    assert provider.requests[0] == {
        "key": "withdrawal:42",
        "user_id": 7,
        "amount_minor": 1_500,
        "reference": "withdrawal:42",
    }


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_transient(provider: Provider, status: int) -> None:
    provider.answers = [status]
    with pytest.raises(TransientPayoutError, match=str(status)):
        gateway_for(provider).payout(REQUEST)
    assert gateway_for(provider).payout(REQUEST) == "po_0"


@pytest.mark.parametrize("status", [400, 402, 422])
def test_4xx_is_permanent(provider: Provider, status: int) -> None:
    provider.answers = [status]
    with pytest.raises(PermanentPayoutError, match=f"refused \\({status}\\)"):
        gateway_for(provider).payout(REQUEST)


def test_a_timeout_is_transient_and_marked_uncertain(provider: Provider) -> None:
    provider.delay_s = 1.0
    with pytest.raises(PayoutTimeoutError):
        gateway_for(provider, timeout_s=0.2).payout(REQUEST)


def test_an_unreachable_provider_is_a_payout_not_sent() -> None:
    from tests.support.redis_servers import free_port

    gateway = HttpGateway(f"http://127.0.0.1:{free_port()}/payouts", 1.0)
    with pytest.raises(PayoutNotSentError, match="unreachable"):
        gateway.payout(REQUEST)


def test_a_bad_url_is_refused_early() -> None:
    with pytest.raises(ValueError, match="PAYOUT_URL"):
        HttpGateway("ftp://example", 1.0)


def test_a_final_timeout_leaves_the_withdrawal_uncertain_and_reserved(
    provider: Provider, database_url: str, redis_client: Any, workers: Any
) -> None:
    from csgoflip_jobs import JobQueue
    from tests.support.payment_helpers import funded_user, payment_service
    from tests.support.polling import wait_for_state

    service = payment_service(database_url)
    user_id = funded_user(service, 2_000)
    provider.delay_s = 1.0
    withdrawal_id = service.request_withdrawal(user_id, 2_000)
    url = f"http://127.0.0.1:{provider.server_address[1]}/payouts"
    workers(
        env={
            "DATABASE_URL": database_url,
            "PAYOUT_GATEWAY": "http",
            "PAYOUT_URL": url,
            "PAYOUT_TIMEOUT_S": "0.3",
        }
    )
    job = wait_for_state(JobQueue("payment"), f"withdrawal:{withdrawal_id}", "failed", 20)
    assert job.attempts_made == 3
    assert service.get_withdrawal(withdrawal_id).status == "uncertain"
    assert service.get_balance(user_id) == 0  # not refunded: the money may have left
    assert {r["key"] for r in provider.requests} == {f"withdrawal:{withdrawal_id}"}
    report = service.reconcile()
    assert report.uncertain_withdrawals == [withdrawal_id] and not report.ok

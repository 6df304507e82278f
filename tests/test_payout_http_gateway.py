"""The http payout gateway against a local HTTP server (127.0.0.1 only)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from csgoflip_jobs.payments.errors import (
    PayoutTimeoutError,
    PermanentPayoutError,
    TransientPayoutError,
)
from csgoflip_jobs.payments.gateways import HttpGateway, PayoutRequest


class Provider(ThreadingHTTPServer):
    """A payment provider that dedupes by Idempotency-Key and answers as scripted."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ProviderHandler)
        self.answers: list[int] = []  # status codes to answer next; then 201
        self.payouts: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.delay_s = 0.0


class ProviderHandler(BaseHTTPRequestHandler):
    server: Provider

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        key = self.headers["Idempotency-Key"]
        self.server.requests.append({"key": key, **body})
        if self.server.delay_s:
            threading.Event().wait(self.server.delay_s)
        status = self.server.answers.pop(0) if self.server.answers else 201
        if status == 201:
            payout = self.server.payouts.setdefault(key, {"id": f"po_{len(self.server.payouts)}"})
            self._send(201, payout)
        else:
            self._send(status, {"error": "scripted"})

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def provider() -> Iterator[Provider]:
    server = Provider()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def gateway_for(provider: Provider, timeout_s: float = 2.0) -> HttpGateway:
    return HttpGateway(f"http://127.0.0.1:{provider.server_address[1]}/payouts", timeout_s)


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


def test_an_unreachable_provider_is_transient() -> None:
    from tests.support.redis_servers import free_port

    gateway = HttpGateway(f"http://127.0.0.1:{free_port()}/payouts", 1.0)
    with pytest.raises(TransientPayoutError, match="unreachable"):
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

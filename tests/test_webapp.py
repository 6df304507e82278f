"""The example web app (examples/webapp) under uvicorn with a real worker: over HTTP,
and in headless Chromium."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from csgoflip_jobs import RateLimitService
from examples.webapp.app import API_LIMIT, API_WINDOW_S
from tests.support.browser import chromium, screenshot_path
from tests.support.polling import wait_until
from tests.support.webapp import running_webapp
from tests.support.workers import WorkerProcess


@pytest.fixture
def webapp(
    tmp_path: Path, redis_client: redis.Redis, workers: Callable[..., WorkerProcess]
) -> Iterator[str]:
    """The example app on a free port, with a payment worker, on a fresh SQLite ledger."""
    with running_webapp(tmp_path, workers) as url:
        yield url


PASSWORD = "correct horse battery"


def sign_up(client: httpx.Client, name: str) -> httpx.Response:
    return client.post("/api/sign-up", json={"name": name, "password": PASSWORD})


def test_the_app_over_http(webapp: str) -> None:
    with httpx.Client(base_url=webapp, timeout=10) as client:
        assert client.get("/api/me").status_code == 401
        signed = sign_up(client, "alice")
        assert signed.status_code == 200
        assert "httponly" in signed.headers["set-cookie"].lower()
        assert client.get("/api/me").json()["balance"] == 0
        assert client.post("/api/deposits", json={"amount": 10_000}).status_code == 200
        wait_until(lambda: client.get("/api/me").json()["balance"] == 10_000, 20)
        bad = client.post("/api/withdrawals", json={"amount": -5})
        assert bad.status_code == 400
        assert "whole number of minor units from 1 to" in bad.json()["error"]
        too_much = client.post("/api/withdrawals", json={"amount": 99_999})
        assert too_much.status_code == 400 and "cannot withdraw" in too_much.json()["error"]
        unknown = client.post("/api/withdrawals/424242/cancel", json={})
        assert unknown.status_code == 400 and "unknown withdrawal" in unknown.json()["error"]
        paid = client.post("/api/withdrawals", json={"amount": 2_500}).json()["withdrawal_id"]
        kept = client.post("/api/withdrawals", json={"amount": 1_000}).json()["withdrawal_id"]
        cancelled = client.post(f"/api/withdrawals/{kept}/cancel", json={})
        assert cancelled.json()["status"] == "cancelled"

        def status(withdrawal_id: int) -> str:
            rows = client.get("/api/withdrawals").json()
            return str(next(r["status"] for r in rows if r["withdrawal_id"] == withdrawal_id))

        wait_until(lambda: status(paid) == "completed", 30)
        assert status(kept) == "cancelled"
        assert client.get("/api/me").json()["balance"] == 7_500
        late = client.post(f"/api/withdrawals/{paid}/cancel", json={})
        assert late.status_code == 409 and "too late to cancel" in late.json()["error"]
        assert client.get("/api/cases").json()[0] == "Chroma Case"


def test_sign_in_is_rate_limited_per_ip(webapp: str) -> None:
    with httpx.Client(base_url=webapp, timeout=10) as client:
        sign_up(client, "bob")
        attempt = {"name": "bob", "password": PASSWORD}
        codes = [client.post("/api/sign-in", json=attempt).status_code for _ in range(5)]
        limited = client.post("/api/sign-in", json=attempt)
    assert codes[:4] == [200] * 4 and codes[4] == 429  # the sign-up was the first attempt
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    assert "too many sign-in attempts" in limited.json()["error"]


def test_signed_in_calls_are_rate_limited_per_user(webapp: str) -> None:
    with (
        httpx.Client(base_url=webapp, timeout=10) as dave,
        httpx.Client(base_url=webapp, timeout=10) as erin,
    ):
        user_id = sign_up(dave, "dave").json()["user_id"]
        sign_up(erin, "erin")
        assert dave.get("/api/session").json() == {"user_id": user_id, "name": "dave"}
        limiter = RateLimitService()
        for _ in range(API_LIMIT - 1):  # the rest of dave's minute, spent here
            limiter.check(f"api:{user_id}", API_LIMIT, API_WINDOW_S)
        limited = dave.get("/api/session")
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
        assert "too many requests" in limited.json()["error"]
        assert erin.get("/api/session").status_code == 200  # another user's own limit


def test_the_page_signs_in_deposits_and_sees_withdrawals_move_live(webapp: str) -> None:
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1000, "height": 800})
        page.goto(webapp)
        page.fill("#name", "carol")
        page.fill("#password", PASSWORD)
        page.click("#sign-up-button")
        page.wait_for_selector("#wallet:not(.hidden)")
        page.click("#deposit-button")
        page.wait_for_function("document.getElementById('balance').textContent === '10000'",
                               timeout=20_000)  # fmt: skip
        page.fill("#withdraw-amount", "-3")
        page.click("#withdraw-button")
        page.wait_for_function(
            "document.getElementById('message').textContent.includes('whole number')"
        )
        page.fill("#withdraw-amount", "2500")
        page.click("#withdraw-button")
        page.wait_for_selector("#withdrawals .status-pending")
        page.fill("#withdraw-amount", "1000")
        page.click("#withdraw-button")
        page.wait_for_selector("#withdrawals tr:nth-child(2) .status-pending")
        page.screenshot(path=str(screenshot_path("webapp-pending")))
        page.click("#withdrawals tr:nth-child(2) button.cancel")
        page.wait_for_selector("#withdrawals tr:nth-child(2) .status-cancelled")
        # The first one is paid by the worker: the page learns it without a reload.
        page.wait_for_selector("#withdrawals tr:nth-child(1) .status-completed", timeout=30_000)
        assert page.inner_text("#balance") == "7500"
        page.screenshot(path=str(screenshot_path("webapp-completed")))


HOSTILE_AMOUNTS = ["9223372036854775808", "-1", "1e400", "NaN", '"\'"', '"99999999999999999999"']
"""JSON texts of amounts: 2^63, -1, 1e400 (infinity), NaN, a quote, a 20-digit string."""


def test_hostile_input_is_a_400_with_a_message_never_a_500(webapp: str, tmp_path: Path) -> None:
    with httpx.Client(base_url=webapp, timeout=10) as client:
        for name in ['o"neil', "x'; --", "<b>", "a" * 33]:
            refused = sign_up(client, name)
            assert refused.status_code == 400 and "a name of 1 to 32" in refused.json()["error"]
        assert sign_up(client, "mallory").status_code == 200
        headers = {"content-type": "application/json"}
        for path in ("/api/deposits", "/api/withdrawals"):
            for amount in HOSTILE_AMOUNTS:
                answer = client.post(path, content=f'{{"amount": {amount}}}', headers=headers)
                assert answer.status_code == 400, (path, amount, answer.text)
                assert "amount must be a whole number of minor units" in answer.json()["error"]
        answer = client.post(f"/api/withdrawals/{'9' * 20}/cancel", json={})
        assert answer.status_code == 400
        assert "withdrawal_id must be a whole number from 1 to" in answer.json()["error"]
        assert client.get("/api/me").json()["balance"] == 0
    log = (tmp_path / "webapp.log").read_text()
    assert "Traceback" not in log and " 500 " not in log, log

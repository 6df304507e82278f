"""The /demo page in headless Chromium shows a live event enqueued through JobQueue."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from csgoflip_jobs import JobQueue, SessionService
from tests.support.browser import chromium, screenshot_path
from tests.support.gateway_process import GatewayProcess, start_gateway
from tests.support.workers import WorkerProcess


@pytest.fixture
def gateway(tmp_path: Path, redis_client: redis.Redis) -> Iterator[GatewayProcess]:
    process = start_gateway(tmp_path / "gateway.log")
    yield process
    process.stop()


def test_the_demo_page_shows_a_live_event(
    gateway: GatewayProcess, workers: Callable[..., WorkerProcess], redis_client: redis.Redis
) -> None:
    workers(queues="notification")
    sessions = SessionService(redis_client)
    session = sessions.create(77)
    ticket = sessions.issue_ticket(session.id)
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 900, "height": 500})
        page.goto(f"{gateway.http}/demo#{ticket}")
        page.wait_for_selector("#status.connected", timeout=10_000)
        assert page.url == f"{gateway.http}/demo"  # the ticket left the address bar
        assert redis_client.get(f"csgoflip:session-ticket:{ticket}") is None  # used up
        JobQueue("notification").add(
            "send-notification",
            {"user_id": 77, "type": "case-opened", "payload": {"item": "M4A4 | Howl"}},
        )
        page.wait_for_selector("li .type", timeout=10_000)
        assert page.inner_text("li .type") == "case-opened"
        assert "M4A4 | Howl" in page.inner_text("li .payload")
        shot = screenshot_path("demo-live-event")
        page.screenshot(path=str(shot))
    assert shot.stat().st_size > 1000


def test_the_demo_page_says_when_not_signed_in(gateway: GatewayProcess) -> None:
    with chromium() as browser:
        page = browser.new_page()
        page.goto(f"{gateway.http}/demo#nope")
        page.wait_for_selector("#status.closed", timeout=10_000)
        assert page.inner_text("#status") == "not signed in"

"""The Jobs pages inside Flower, driven in headless Chromium against a real Flower, a
real worker and real Redis: failed jobs with their reasons and retry, pause and
resume, delayed jobs and promote, remove with its confirmation, and counts that are
``get_job_counts``'s. Screenshots go to test-artifacts/; with UPDATE_DOCS_SCREENSHOTS=1
the overview is also written to docs/flower-jobs.png for the README."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import redis
from playwright.sync_api import Page

from csgoflip_jobs import JobQueue
from csgoflip_jobs.celery_app import job_counts_by_queue
from tests.support.browser import chromium, screenshot_path
from tests.support.flower_process import running_flower
from tests.support.jobs import FAIL_FLAG_KEY
from tests.support.polling import wait_for_state, wait_until
from tests.support.workers import WorkerProcess

pytestmark = pytest.mark.timeout(120)

DOCS_SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "flower-jobs.png"
STATES = ("waiting", "delayed", "active", "paused", "completed", "failed")


@pytest.fixture
def flower(tmp_path: Path, redis_client: redis.Redis) -> Iterator[str]:
    with running_flower(tmp_path / "flower.log", test_tasks=True) as url:
        yield url


@pytest.fixture
def page(flower: str) -> Iterator[Page]:
    with chromium() as browser:
        yield browser.new_page(viewport={"width": 1400, "height": 800})


def page_counts(page: Page) -> dict[str, dict[str, int]]:
    """The counts the overview shows, per queue and state."""
    counts: dict[str, dict[str, int]] = {}
    for row in page.locator("#jobs-queues tbody tr[data-queue]").all():
        queue = row.get_attribute("data-queue") or ""
        counts[queue] = {
            state: int(row.locator(f'td[data-state="{state}"]').inner_text()) for state in STATES
        }
    return counts


def reload_until(page: Page, condition: Callable[[], Any], timeout: float = 30) -> None:
    """Reload the page until ``condition`` holds (the worker runs in the background)."""

    def reloaded() -> Any:
        page.reload()
        return condition()

    wait_until(reloaded, timeout, interval=0.5)


def test_a_failed_job_shows_its_reason_and_retry_completes_it(
    flower: str, page: Page, workers: Callable[..., WorkerProcess], redis_client: redis.Redis
) -> None:
    workers(name="jobsw", concurrency=1)
    queue = JobQueue("payment")
    redis_client.set(FAIL_FLAG_KEY, 1)
    job_id = queue.add("test-fail-while-flagged", {"withdrawal_id": 7}, attempts=1)
    wait_for_state(queue, job_id, "failed", timeout=30)

    page.goto(f"{flower}/jobs/payment/failed")
    row = page.locator(f'tr[data-job-id="{job_id}"]')
    assert "payout provider said no" in row.inner_text()
    assert "second line" not in row.inner_text()  # the list shows the first line only
    page.screenshot(path=str(screenshot_path("flower-jobs-failed")))
    row.get_by_role("link", name=job_id).click()
    assert page.locator("#job-state").inner_text() == "failed"
    assert "second line of the reason" in page.locator("#job-failed-reason").inner_text()
    assert "RuntimeError" in page.locator("#job-stacktrace").inner_text()
    assert '"withdrawal_id": 7' in page.locator("#job-data").inner_text()

    redis_client.delete(FAIL_FLAG_KEY)
    page.locator('button[data-action="retry"]').click()
    assert "waiting to run again" in page.locator("#jobs-notice").inner_text()
    reload_until(page, lambda: page.locator("#job-state").inner_text() == "completed")
    assert page.locator("#job-returnvalue").inner_text() == '"ok"'
    page.screenshot(path=str(screenshot_path("flower-jobs-retried")))
    assert queue.get_job(job_id).state == "completed"  # type: ignore[union-attr]


def test_pausing_a_queue_keeps_new_jobs_waiting_and_resuming_runs_them(
    flower: str,
    page: Page,
    workers: Callable[..., WorkerProcess],
    runs: Callable[[], list[dict[str, Any]]],
) -> None:
    workers(name="jobsw", concurrency=1)
    page.goto(f"{flower}/jobs")
    page.locator('#queue-email button[data-action="pause"]').click()
    assert page.locator("#jobs-notice").inner_text() == "email is paused"
    assert page.locator("#queue-email [data-paused]").is_visible()

    queue = JobQueue("email")
    job_ids = [queue.add("test-record", {"n": n}) for n in range(3)]
    reload_until(page, lambda: page_counts(page)["email"]["paused"] == 3)
    assert not runs()  # a paused queue starts nothing
    assert page_counts(page)["email"] == {**dict.fromkeys(STATES, 0), "paused": 3}
    page.screenshot(path=str(screenshot_path("flower-jobs-paused")))

    page.locator('#queue-email button[data-action="resume"]').click()
    assert page.locator("#jobs-notice").inner_text() == "email is running"
    reload_until(page, lambda: page_counts(page)["email"]["completed"] == 3)
    assert sorted(r["id"] for r in runs()) == sorted(job_ids)
    assert not page.locator("#queue-email [data-paused]").count()


def test_a_delayed_job_is_listed_and_promote_runs_it_and_remove_asks_first(
    flower: str,
    page: Page,
    workers: Callable[..., WorkerProcess],
    runs: Callable[[], list[dict[str, Any]]],
) -> None:
    workers(name="jobsw", concurrency=1)
    queue = JobQueue("notification")
    promoted = queue.add("test-record", {"promote": True}, delay=600_000)
    kept = queue.add("test-record", {"remove": True}, delay=600_000)

    page.goto(f"{flower}/jobs/notification/delayed")
    assert page.locator(f'tr[data-job-id="{promoted}"]').is_visible()
    assert re.search(r"\b(9|10) min\b", page.locator(f'tr[data-job-id="{promoted}"]').inner_text())
    page.screenshot(path=str(screenshot_path("flower-jobs-delayed")))
    page.locator(f'tr[data-job-id="{promoted}"] button[data-action="promote"]').click()
    assert "is waiting now" in page.locator("#jobs-notice").inner_text()
    assert queue.wait_until_finished(promoted, timeout_s=30) == {"promote": True}
    assert [r["id"] for r in runs()] == [promoted]

    page.goto(f"{flower}/jobs/notification/job/{kept}")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.locator('button[data-action="remove"]').click()
    assert queue.get_job(kept) is not None  # dismissed: nothing sent
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator('button[data-action="remove"]').click()
    page.wait_for_url(re.compile(r"/jobs/notification/delayed$"))
    assert f"job {kept} was removed" in page.locator("#jobs-notice").inner_text()
    assert queue.get_job(kept) is None


def test_the_counts_on_the_page_are_get_job_counts(
    flower: str,
    page: Page,
    workers: Callable[..., WorkerProcess],
    redis_client: redis.Redis,
) -> None:
    worker = workers(name="jobsw", concurrency=2)
    redis_client.set(FAIL_FLAG_KEY, 1)
    email, payment, notification = JobQueue("email"), JobQueue("payment"), JobQueue("notification")
    finished = [email.add("test-record", {"n": n}) for n in range(4)]
    finished += [payment.add("test-fail-while-flagged", {"n": n}, attempts=1) for n in range(2)]
    for job_id in finished:
        wait_until(partial(_finished, job_id), 30)
    worker.kill()  # nothing moves while the page and the counts are read
    notification.pause()
    for n in range(3):
        notification.add("test-record", {"n": n})
        payment.add("test-record", {"n": n}, delay=600_000)
    email.add("test-record", {"waiting": True})

    page.goto(f"{flower}/jobs")
    shown = page_counts(page)
    expected = {
        name: {state: counts[state] for state in STATES}
        for name, counts in job_counts_by_queue().items()
    }
    assert shown == expected
    assert expected["payment"]["failed"] == 2 and expected["email"]["completed"] == 4
    text = page.locator("#queue-email").inner_text()
    assert "last hour: 4 completed, 0 failed" in text
    assert page.get_by_role("link", name="Jobs").first.is_visible()  # in Flower's navbar
    path = screenshot_path("flower-jobs")
    page.screenshot(path=str(path))
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS") == "1":
        shutil.copyfile(path, DOCS_SCREENSHOT)


def _finished(job_id: str) -> bool:
    for name in ("email", "payment"):
        job = JobQueue(name).get_job(job_id)
        if job is not None and job.state in ("completed", "failed"):
            return True
    return False

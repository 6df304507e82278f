"""The Jobs pages and /api/jobs over HTTP against a real Flower and real Redis: every
action needs the credentials (401) and the anti-forgery token (403); unknown queues,
states and jobs are 404s that say what was not found; a refused action says why;
/metrics carries the per-queue numbers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from csgoflip_jobs import JobQueue
from csgoflip_jobs.celery_app import job_counts_by_queue
from tests.support.flower_process import running_flower
from tests.support.polling import wait_for_state
from tests.support.workers import WorkerProcess

pytestmark = pytest.mark.timeout(120)

CREDENTIALS = ("ops", "jobs-board-5e1f")
ENV = {"FLOWER_USER": CREDENTIALS[0], "FLOWER_PASSWORD": CREDENTIALS[1]}


def actions(job_id: str) -> list[str]:
    """Every POST of the pages and the API, on a job of the email queue."""
    job = [f"/jobs/email/job/{job_id}/{a}" for a in ("retry", "remove", "promote")]
    queue = [f"/jobs/email/actions/{a}" for a in ("retry-failed", "pause", "resume", "clean")]
    return [*job, *queue, *(f"/api{path}" for path in (*job, *queue))]


@pytest.fixture
def flower(tmp_path: Path, redis_client: redis.Redis) -> Iterator[str]:
    with running_flower(tmp_path / "flower.log", ENV, test_tasks=True) as url:
        yield url


def signed_in(base: str) -> httpx.Client:
    """A client with the credentials and the _xsrf cookie a GET of the API sets."""
    client = httpx.Client(base_url=base, auth=CREDENTIALS, timeout=10)
    assert client.get("/api/jobs").status_code == 200
    assert client.cookies.get("_xsrf")
    return client


def token(client: httpx.Client) -> dict[str, str]:
    return {"X-XSRFToken": client.cookies["_xsrf"]}


def test_every_action_needs_the_credentials_and_the_token(flower: str) -> None:
    queue = JobQueue("email")
    job_id = queue.add("test-record", {"n": 1}, delay=600_000)
    client = signed_in(flower)
    for path in actions(job_id):
        anonymous = httpx.post(flower + path, headers=token(client), timeout=10)
        assert anonymous.status_code == 401, path  # also with a token, before anything else
        wrong = httpx.post(flower + path, auth=(CREDENTIALS[0], "wrong"), timeout=10)
        assert wrong.status_code == 401, path
        untokened = client.post(path, data={"state": "failed", "minutes": "0"})
        assert untokened.status_code == 403, path
        assert "_xsrf" in untokened.text, path
        forged = client.post(path, headers={"X-XSRFToken": "2|00000000|" + "0" * 32 + "|1"})
        assert forged.status_code == 403, path
        cross_site = client.post(path, headers={**token(client), "Sec-Fetch-Site": "cross-site"})
        assert cross_site.status_code == 403, path
    for path in ("/jobs", "/jobs/email/delayed", f"/jobs/email/job/{job_id}", "/api/jobs"):
        assert httpx.get(flower + path, timeout=10).status_code == 401, path
    # Nothing was done by any refused request.
    assert queue.get_job(job_id).state == "delayed"  # type: ignore[union-attr]
    assert not queue.is_paused()
    # With both, the same requests work: a page form and a script.
    page_post = client.post(
        "/jobs/email/actions/pause", data={"_xsrf": client.cookies["_xsrf"]}, follow_redirects=False
    )
    assert page_post.status_code == 303 and page_post.headers["Location"] == "/jobs"
    assert queue.is_paused()
    api_post = client.post(f"/api/jobs/email/job/{job_id}/promote", headers=token(client))
    assert api_post.json() == {"message": f"job {job_id} is waiting now", "job_gone": False}


def test_the_token_is_needed_even_without_credentials(
    tmp_path: Path, redis_client: redis.Redis
) -> None:
    """Flower skips its token check when no login is configured; the Jobs actions do not."""
    with running_flower(tmp_path / "flower.log") as base:
        response = httpx.post(f"{base}/api/jobs/email/actions/pause", timeout=10)
        assert response.status_code == 403
        assert not JobQueue("email").is_paused()


def test_unknown_queues_states_jobs_and_actions_are_404s_that_say_what(flower: str) -> None:
    client = signed_in(flower)
    job_id = JobQueue("payment").add("test-record", {"n": 1}, delay=600_000)
    missing = {
        "/jobs/nope": None,  # /jobs/<queue> alone is no page: Flower's own 404
        "/jobs/nope/failed": "no queue &#x27;nope&#x27;; the queues are payment, notification,",
        "/jobs/email/nope": "no state &#x27;nope&#x27;; the states are waiting, delayed,",
        "/jobs/email/job/nope": "no job &#x27;nope&#x27; in queue &#x27;email&#x27;",
        # Job ids are per queue: a payment job is no job of the email queue.
        f"/jobs/email/job/{job_id}": f"no job &#x27;{job_id}&#x27; in queue &#x27;email&#x27;",
    }
    for path, message in missing.items():
        response = client.get(path)
        assert response.status_code == 404, path
        assert 'href="/jobs"' in response.text, path  # Flower's frame, with the Jobs link
        if message:
            assert message in response.text, path
    api = {
        "/api/jobs/nope/failed": "no queue 'nope'",
        "/api/jobs/email/nope": "no state 'nope'",
        "/api/jobs/email/job/nope": "no job 'nope' in queue 'email'",
    }
    for path, message in api.items():
        response = client.get(path)
        assert response.status_code == 404, path
        assert message in response.json()["error"], path
    refused = client.post("/api/jobs/email/actions/explode", headers=token(client))
    assert refused.status_code == 404 and "no queue action 'explode'" in refused.json()["error"]
    refused = client.post("/api/jobs/email/job/nope/retry", headers=token(client))
    assert refused.status_code == 404 and "no job 'nope'" in refused.json()["error"]


def test_an_action_the_jobs_state_refuses_says_why(flower: str) -> None:
    client = signed_in(flower)
    queue = JobQueue("email")
    job_id = queue.add("test-record", {"n": 1}, delay=600_000)
    refused = client.post(f"/api/jobs/email/job/{job_id}/retry", headers=token(client))
    assert refused.status_code == 409
    assert refused.json() == {
        "error": f"job {job_id} is delayed, not failed: only a failed job is retried"
    }
    bad = client.post(
        "/api/jobs/email/actions/clean", headers=token(client), data={"state": "failed"}
    )
    assert bad.status_code == 400 and "minutes must be a whole number" in bad.json()["error"]
    # The page's form: back to the job's page, which says why and still works.
    response = client.post(
        f"/jobs/email/job/{job_id}/retry",
        data={"_xsrf": client.cookies["_xsrf"]},
        follow_redirects=True,
    )
    assert response.status_code == 200 and str(response.url).endswith(f"/job/{job_id}")
    assert f"Refused: job {job_id} is delayed, not failed" in response.text
    assert queue.get_job(job_id).state == "delayed"  # type: ignore[union-attr]


def test_the_api_lists_a_state_50_a_page_newest_first_and_filters_by_name(flower: str) -> None:
    client = signed_in(flower)
    queue = JobQueue("notification")
    queue.pause()
    added = [
        queue.add("test-record" if n % 12 else "test-progress", {"steps": n}) for n in range(60)
    ]
    first = client.get("/api/jobs/notification/paused").json()
    assert (first["total"], first["pages"], len(first["jobs"])) == (60, 2, 50)
    assert [job["id"] for job in first["jobs"]] == added[::-1][:50]  # newest first
    second = client.get("/api/jobs/notification/paused?page=2").json()
    assert [job["id"] for job in second["jobs"]] == added[::-1][50:]
    sleeps = client.get("/api/jobs/notification/paused?name=test-progress").json()
    assert [job["id"] for job in sleeps["jobs"]] == [added[n] for n in (48, 36, 24, 12, 0)]
    assert (sleeps["total"], sleeps["complete"]) == (5, True)
    assert client.get("/api/jobs").json()["queues"][1]["counts"]["paused"] == 60


def test_metrics_carry_the_per_queue_gauges_and_counters(
    flower: str, workers: Callable[..., WorkerProcess]
) -> None:
    workers(name="metricsw", concurrency=1)
    email = JobQueue("email")
    done = email.add("test-record", {"n": 1})
    failed = email.add("test-unrecoverable", {"n": 2})
    wait_for_state(email, done, "completed", 30)
    wait_for_state(email, failed, "failed", 30)
    JobQueue("payment").add("test-record", {"n": 3}, delay=600_000)
    assert httpx.get(flower + "/metrics", timeout=10).status_code == 401
    text = httpx.get(flower + "/metrics", auth=CREDENTIALS, timeout=10).text
    for queue, counts in job_counts_by_queue().items():
        for state, count in counts.items():
            line = f'csgoflip_queue_jobs{{queue="{queue}",state="{state}"}} {float(count)}'
            assert line in text
        assert f'csgoflip_queue_paused{{queue="{queue}"}} 0.0' in text
    assert 'csgoflip_queue_jobs{queue="payment",state="delayed"} 1.0' in text
    assert 'csgoflip_queue_jobs_completed_total{queue="email"} 1.0' in text
    assert 'csgoflip_queue_jobs_failed_total{queue="email"} 1.0' in text
    assert "csgoflip_queue_redis_up 1.0" in text
    assert "flower_events_total" in text  # Flower's own series are still there


def test_plain_celery_flower_serves_the_jobs_pages_and_read_only_refuses_actions(
    tmp_path: Path, redis_client: redis.Redis
) -> None:
    with running_flower(tmp_path / "flower.log", ENV, "--read_only=true") as base:
        client = signed_in(base)
        assert client.get("/jobs").status_code == 200
        assert 'data-action="pause"' not in client.get("/jobs").text  # no buttons
        response = client.post("/api/jobs/email/actions/pause", headers=token(client))
        assert response.status_code == 403 and "read-only" in response.json()["error"]
        assert not JobQueue("email").is_paused()

"""Flower safe by default, against a real Flower: loopback only without credentials (no
DNS rebinding), no framing, bad numbers and odd credentials as 400 / 401 (never 500), a
read-only viewer, revocable API tokens, the acting user in the audit line, and a name
filter that reads names, not whole records."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from csgoflip_jobs import JobQueue
from csgoflip_jobs.engine.board.actions import MAX_CLEAN_MINUTES
from csgoflip_jobs.engine.celery_ext import flower_auth
from tests.support.child_processes import ROOT
from tests.support.flower_process import flower_process, running_flower

pytestmark = pytest.mark.timeout(180)

ADMIN = ("ops", "jobs-board-5e1f")
VIEWER = ("support", "look-only-9c2a")
ENV = {
    "FLOWER_USER": ADMIN[0],
    "FLOWER_PASSWORD": ADMIN[1],
    "FLOWER_VIEWER_USER": VIEWER[0],
    "FLOWER_VIEWER_PASSWORD": VIEWER[1],
}


@pytest.fixture
def flower(tmp_path: Path, redis_client: redis.Redis) -> Iterator[str]:
    with running_flower(tmp_path / "flower.log", ENV, test_tasks=True) as url:
        yield url


def xsrf(client: httpx.Client) -> dict[str, str]:
    assert client.get("/api/jobs").status_code == 200
    return {"X-XSRFToken": client.cookies["_xsrf"]}


def test_without_credentials_only_the_loopback_to_a_loopback_host_gets_in(
    tmp_path: Path, redis_client: redis.Redis
) -> None:
    """A DNS-rebinding page (Host: its own name) read every job and paused a queue."""
    with running_flower(tmp_path / "open.log", {"FLOWER_USER": "", "FLOWER_PASSWORD": ""}) as url:
        assert httpx.get(f"{url}/jobs", timeout=10).status_code == 200
        rebound = {"Host": "evil.example:5555"}
        for path in ("/jobs", "/api/jobs", "/", "/tasks"):
            assert httpx.get(url + path, headers=rebound, timeout=10).status_code == 403, path
        # Flower's own API answers no one without credentials anyway.
        assert httpx.get(f"{url}/api/workers", headers=rebound, timeout=10).status_code == 401
        pause = httpx.post(f"{url}/api/jobs/email/actions/pause", headers=rebound, timeout=10)
        assert pause.status_code == 403 and not JobQueue("email").is_paused()


def test_no_page_can_be_framed(flower: str) -> None:
    for path in ("/", "/jobs", "/api/jobs", "/tasks", "/broker"):
        answer = httpx.get(flower + path, auth=ADMIN, timeout=10)
        assert answer.headers.get("x-frame-options") == "DENY", path
        assert "frame-ancestors 'none'" in answer.headers.get("content-security-policy", ""), path


def test_bad_numbers_and_odd_credentials_are_400_and_401(flower: str) -> None:
    with httpx.Client(base_url=flower, auth=ADMIN, timeout=10) as client:
        huge = "9" * 5000
        for path in (f"/jobs/email/failed?page={huge}", f"/api/jobs/email/failed?page={huge}",
                     "/api/jobs/email/failed?page=0", "/api/jobs/email/failed?page=x"):  # fmt: skip
            assert client.get(path).status_code == 400, path
        for minutes in (huge, str(MAX_CLEAN_MINUTES + 1)):  # past 10 years: the grace's bound
            clean = client.post("/api/jobs/email/actions/clean", headers=xsrf(client),
                                data={"state": "failed", "minutes": minutes})  # fmt: skip
            assert clean.status_code == 400 and "minutes must be" in clean.json()["error"]
    for user, password in (("ops", "jöbs-board"), ("öps", ADMIN[1]), ("ops", "\udcff")):
        raw = f"{user}:{password}".encode("utf-8", "surrogateescape")
        header = {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        assert httpx.get(f"{flower}/jobs", headers=header, timeout=10).status_code == 401
    broken = {"Authorization": "Basic not-base64!"}
    assert httpx.get(f"{flower}/jobs", headers=broken, timeout=10).status_code == 401


def test_a_non_ascii_flower_password_is_refused_at_start(tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "csgoflip_jobs.ops.cli", "flower", "--port", "1"],
        env={"PATH": "/usr/bin:/bin", "FLOWER_USER": "ops", "FLOWER_PASSWORD": "pässwort"},
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode != 0
    assert "FLOWER_PASSWORD: must be printable ASCII characters" in result.stderr
    assert "pässwort" not in result.stderr


def test_the_viewer_reads_and_the_admin_acts_named_in_the_audit_line(
    flower: str, tmp_path: Path
) -> None:
    queue = JobQueue("email")
    job_id = queue.add("test-record", {"n": 1}, delay=600_000)
    with httpx.Client(base_url=flower, auth=VIEWER, timeout=10) as viewer:
        assert viewer.get("/jobs").status_code == 200
        assert viewer.get(f"/api/jobs/email/job/{job_id}").json()["id"] == job_id
        headers = xsrf(viewer)
        for path in ("/api/jobs/email/actions/pause", f"/api/jobs/email/job/{job_id}/promote",
                     "/api/task/revoke/some-task", "/api/worker/shutdown/w1@host"):  # fmt: skip
            refused = viewer.post(path, headers=headers)
            assert refused.status_code == 403, path
    assert not queue.is_paused() and queue.get_job(job_id).state == "delayed"  # type: ignore[union-attr]
    with httpx.Client(base_url=flower, auth=ADMIN, timeout=10) as admin:
        assert admin.post("/api/jobs/email/actions/pause", headers=xsrf(admin)).status_code == 200
    assert queue.is_paused()
    assert (
        "jobs board: pause of email by ops: email is paused"
        in (tmp_path / "flower.log").read_text()
    )


def test_api_tokens_open_api_jobs_only_and_are_revoked_at_once(
    flower: str, redis_client: redis.Redis
) -> None:
    reader = flower_auth.create_token("dashboards", read_only=True)
    actor = flower_auth.create_token("deploy-bot", read_only=False)
    assert flower_auth.token_names() == [("dashboards", True), ("deploy-bot", False)]
    stored = redis_client.hgetall("csgoflip:flower:tokens")
    assert all(actor not in str(value) for value in stored.values())

    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    assert httpx.get(f"{flower}/api/jobs", headers=bearer(reader), timeout=10).status_code == 200
    assert httpx.get(f"{flower}/jobs", headers=bearer(reader), timeout=10).status_code == 401
    assert httpx.get(f"{flower}/api/workers", headers=bearer(actor), timeout=10).status_code == 401
    pause = f"{flower}/api/jobs/email/actions/pause"
    assert httpx.post(pause, headers=bearer(reader), timeout=10).status_code == 403
    assert httpx.post(pause, headers=bearer(actor), timeout=10).status_code == 200
    assert JobQueue("email").is_paused()
    assert flower_auth.revoke_token("deploy-bot")
    assert httpx.get(f"{flower}/api/jobs", headers=bearer(actor), timeout=10).status_code == 401


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_the_name_filter_reads_names_not_whole_records(
    tmp_path: Path, redis_client: redis.Redis
) -> None:
    """60 jobs of 1 MB: the filter loaded them whole into Flower (107 -> 443 MB)."""
    queue = JobQueue("email")
    queue.add_bulk([{"name": "test-record", "data": {"blob": "x" * 900_000}} for _ in range(60)])
    queue.add("test-sleep", {"seconds": 1})
    with flower_process(tmp_path / "rss.log", ENV, test_tasks=True) as (url, process):
        client = httpx.Client(base_url=url, auth=ADMIN, timeout=60)
        client.get("/jobs/email/waiting")
        before = rss_mb(process.pid)
        found = client.get("/api/jobs/email/waiting?name=test-sleep").json()
        grown = rss_mb(process.pid) - before
        client.close()
    assert [job["name"] for job in found["jobs"]] == ["test-sleep"] and found["total"] == 1
    assert grown < 30, grown

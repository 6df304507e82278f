"""Flower shows the workers and the three queues; production refuses it unprotected; it
keeps a bounded dashboard (tasks in memory, offline workers)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from csgoflip_jobs import JobQueue
from tests.support.browser import chromium, screenshot_path
from tests.support.flower_process import running_flower
from tests.support.workers import WorkerProcess

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def flower(tmp_path: Path, redis_client: redis.Redis) -> Iterator[str]:
    with running_flower(tmp_path / "flower.log") as url:
        yield url


def test_flower_shows_the_worker_online_and_the_queues_with_depths(
    flower: str, workers: Callable[..., WorkerProcess]
) -> None:
    workers(name="flowerw", concurrency=1)
    queue = JobQueue("email")
    for _ in range(4):
        queue.add("test-sleep", {"seconds": 3})
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1200, "height": 700})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # Flower learns about workers from events
            page.goto(f"{flower}/workers")
            if "flowerw@" in page.content():
                break
            time.sleep(1)
        assert "flowerw@" in page.content()
        assert "Online" in page.inner_text("body")
        page.screenshot(path=str(screenshot_path("flower-workers")))
        page.goto(f"{flower}/broker")
        text = page.inner_text("body")
        depths = {
            name: int(m.group(1))
            for name in ("payment", "notification", "email")
            if (m := re.search(rf"^{name}\s+(\d+)", text, re.MULTILINE))
        }
        assert set(depths) == {"payment", "notification", "email"}
        assert depths["email"] >= 2  # one running, the rest waiting
        page.screenshot(path=str(screenshot_path("flower-broker")))
    metrics = httpx.get(f"{flower}/metrics", timeout=5).text
    assert "flower_events_total" in metrics


def test_production_flower_refuses_to_start_without_credentials() -> None:
    env = {**os.environ, "APP_ENV": "production"}
    for command in (
        ["-m", "csgoflip_jobs.ops.cli", "flower"],
        ["-m", "celery", "-A", "csgoflip_jobs", "flower"],
    ):
        result = subprocess.run(
            [sys.executable, *command],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
        assert result.returncode != 0
        assert "refusing to start Flower without credentials" in result.stderr


def test_flower_keeps_a_bounded_dashboard_by_default_and_as_set() -> None:
    probe = (
        "import json; from tornado.options import options; "
        "from csgoflip_jobs.celery_app import app; "
        "from csgoflip_jobs.engine.celery_ext.flower import prepare; prepare(app); "
        "print(json.dumps([options.max_tasks, options.purge_offline_workers]))"
    )
    for env, expected in (
        ({}, [10_000, 3600]),
        ({"FLOWER_MAX_TASKS": "500", "FLOWER_PURGE_OFFLINE_WORKERS_S": "60"}, [500, 60]),
    ):
        environment = {**os.environ, **env}
        result = subprocess.run(
            [sys.executable, "-c", probe],
            env=environment,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert json.loads(result.stdout.splitlines()[-1]) == expected

"""The package's shape: importing it does nothing, it exports the public contract, the
engine serves whatever queues the app defines, and Celery's own tools work on it."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis
from kombu import Queue

import celeryconfig
import csgoflip_jobs
from csgoflip_jobs import JobQueue
from csgoflip_jobs.celery_app import create_app
from tests.support.flower_process import running_flower
from tests.support.workers import WorkerProcess

ROOT = Path(__file__).resolve().parents[1]

IMPORT_PROBE = """
import socket, sys
connects = []
original = socket.socket.connect
def recording(self, address):
    connects.append(address)
    return original(self, address)
socket.socket.connect = recording
sys.argv = ["celery", "-A", "csgoflip_jobs", "flower"]
import kombu.transport
aliases = dict(kombu.transport.TRANSPORT_ALIASES)
import csgoflip_jobs
from csgoflip_jobs import CacheService, RateLimitService, SessionService
print("celery imported:", "celery" in sys.modules)
from csgoflip_jobs import JobQueue, PaymentService, app
print("connections:", connects)
print("kombu aliases changed:", aliases != kombu.transport.TRANSPORT_ALIASES)
"""

BAD_ENVIRONMENT = {"REDIS_PORT": "abc", "SMTP_PORT": "x", "FLOWER_USER": "", "APP_ENV": "nope"}


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **env}
    environment.pop("REDIS_URL", None)
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_importing_the_package_does_nothing() -> None:
    """No I/O, no exit on bad settings, no sys.argv, no patching of kombu: even the app
    and PaymentService import with every setting wrong."""
    result = run_python(IMPORT_PROBE, BAD_ENVIRONMENT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "celery imported: False",
        "connections: []",
        "kombu aliases changed: False",
    ]


def test_a_bad_setting_is_a_config_error_at_first_use_and_the_process_goes_on() -> None:
    code = (
        "from csgoflip_jobs import ConfigError, JobQueue\n"
        "try:\n"
        "    JobQueue('payment')\n"
        "except ConfigError as exc:\n"
        "    print('ConfigError:', exc)\n"
        "print('still running')\n"
    )
    result = run_python(code, {"REDIS_PORT": "abc"})
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()
    assert first.startswith("ConfigError: REDIS_PORT: Input should be a valid integer")
    assert second == "still running"


def test_every_public_name_is_exported_lazily_and_typed() -> None:
    exports = csgoflip_jobs._EXPORTS
    assert sorted(csgoflip_jobs.__all__) == sorted(exports)
    for name in csgoflip_jobs.__all__:
        assert getattr(csgoflip_jobs, name) is not None
    # What type checkers see (the TYPE_CHECKING imports) is the same set of names.
    tree = ast.parse(Path(csgoflip_jobs.__file__).read_text())
    checked = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING"
        for statement in node.body
        if isinstance(statement, ast.ImportFrom)
        for alias in statement.names
    }
    assert checked == set(exports)


def test_every_name_the_readme_imports_exists() -> None:
    readme = (ROOT / "README.md").read_text()
    statements = re.findall(r"^from (csgoflip_jobs[\w.]*) import (\([^)]*\)|.*)$", readme, re.M)
    assert statements, "the README shows no imports"
    for module, names in statements:
        for name in re.findall(r"\w+", names):
            imported = __import__(module, fromlist=[name])
            assert hasattr(imported, name), f"README: from {module} import {name}"


def test_the_engine_serves_the_queues_the_app_defines(redis_client: redis.Redis) -> None:
    """The engine knows no CSGOFlip queue: an app with other queues gets them."""
    settings = {k: v for k, v in vars(celeryconfig).items() if k.islower() and k[0] != "_"}
    config = type("Config", (), {**settings, "task_queues": [Queue("reports")]})
    app = create_app(config, set_as_current=False)

    @app.task(name="build-report")
    def build_report(day: str) -> str:
        return day

    reports = JobQueue("reports", app=app)
    job_id = reports.add("build-report", {"day": "2026-12-01"})
    assert reports.get_job(job_id).queue == "reports"  # type: ignore[union-attr]
    assert reports.get_job_counts()["waiting"] == 1
    with pytest.raises(ValueError, match="unknown queue 'payment'; the queues are reports"):
        JobQueue("payment", app=app)


def celery(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "celery", "-A", "csgoflip_jobs", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_celery_inspect_and_purge_work_on_the_platform(
    workers: Callable[..., WorkerProcess], redis_client: redis.Redis
) -> None:
    workers(name="inspected", queues="payment", concurrency=1)
    ping = celery("inspect", "ping", "-t", "5")
    assert ping.returncode == 0 and "pong" in ping.stdout, ping.stdout + ping.stderr
    emails = JobQueue("email")
    emails.add_bulk([{"name": "test-record", "data": {"n": n}} for n in range(3)])
    purge = celery("purge", "-f", "-Q", "email")
    assert purge.returncode == 0, purge.stderr
    assert "Purged 3 messages" in purge.stdout
    assert emails.get_job_counts()["waiting"] == 0


def test_plain_celery_flower_asks_for_the_platform_credentials(
    tmp_path: Path, redis_client: redis.Redis
) -> None:
    """``celery -A csgoflip_jobs flower`` takes FLOWER_USER / FLOWER_PASSWORD as its basic
    auth, as ``csgoflip-jobs flower`` does (it used to run open unless --basic-auth)."""
    env = {"FLOWER_USER": "ops", "FLOWER_PASSWORD": "s3cret-flower"}
    with running_flower(tmp_path / "flower.log", env, "--inspect-timeout=1000") as base:
        assert httpx.get(f"{base}/", timeout=5).status_code == 401
        assert httpx.get(f"{base}/metrics", timeout=5).status_code == 401

        credentials = ("ops", env["FLOWER_PASSWORD"])
        assert httpx.get(f"{base}/", auth=credentials, timeout=5).status_code == 200


def test_imports_run_one_way() -> None:
    """import-linter's contract (pyproject.toml): ops -> app wiring, workers -> domain ->
    engine -> helpers -> settings, errors, keys."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout

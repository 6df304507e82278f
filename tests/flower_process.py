"""Run Flower (``csgoflip-jobs flower``) as a child process for the tests (127.0.0.1 only)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.polling import wait_until
from tests.redis_servers import free_port

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def running_flower(log_path: Path, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """Start Flower with ``env`` added to this environment, wait until it answers its
    health check (open without credentials, by Flower's design); yield its base URL."""
    port = free_port()
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "csgoflip_jobs.cli", "flower", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/healthcheck", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(healthy, 30, interval=0.2)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

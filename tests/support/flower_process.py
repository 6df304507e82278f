"""Run Flower (``csgoflip-jobs flower`` or ``celery ... flower``) for the tests, on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.child_processes import spawn_logged
from tests.support.polling import wait_until
from tests.support.redis_servers import free_port


@contextmanager
def running_flower(
    log_path: Path, env: Mapping[str, str] | None = None, *celery_flower_args: str
) -> Iterator[str]:
    """Start Flower with ``env`` added to this environment, wait until it answers its
    health check (open without credentials, by Flower's design); yield its base URL.

    By default through ``csgoflip-jobs flower``; given ``celery_flower_args``, as
    ``celery -A csgoflip_jobs flower`` with those arguments instead.
    """
    port = free_port()
    command = [sys.executable, "-m", "csgoflip_jobs.ops.cli", "flower", "--port", str(port)]
    if celery_flower_args:
        celery = [sys.executable, "-m", "celery", "-A", "csgoflip_jobs", "flower"]
        command = [*celery, "--address=127.0.0.1", f"--port={port}", *celery_flower_args]
    process = spawn_logged(command, log_path, env)
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

"""Run Flower (``csgoflip-jobs flower`` or ``celery ... flower``) for the tests, on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from tests.support.child_processes import spawn_logged
from tests.support.polling import http_status, wait_until
from tests.support.redis_servers import free_port

TEST_TASKS_FIRST = (
    "import runpy, sys; import tests.support.jobs; "
    "module = sys.argv.pop(1); runpy.run_module(module, run_name='__main__', alter_sys=True)"
)
"""``python -c`` code: register the test tasks, then run the module named first (as -m)."""


@contextmanager
def running_flower(
    log_path: Path,
    env: Mapping[str, str] | None = None,
    *celery_flower_args: str,
    test_tasks: bool = False,
) -> Iterator[str]:
    """:func:`flower_process`, yielding only the base URL."""
    with flower_process(log_path, env, *celery_flower_args, test_tasks=test_tasks) as started:
        yield started[0]


@contextmanager
def flower_process(
    log_path: Path,
    env: Mapping[str, str] | None = None,
    *celery_flower_args: str,
    test_tasks: bool = False,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Start Flower with ``env`` added to this environment, wait until it answers its
    health check (open without credentials, by Flower's design); yield its base URL and
    its process.

    By default through ``csgoflip-jobs flower``; given ``celery_flower_args``, as
    ``celery -A csgoflip_jobs flower`` with those arguments instead. ``test_tasks``
    registers tests.support.jobs in Flower's app first (the Jobs board's retry enqueues
    through it, as a worker's ``-I`` does for workers).
    """
    port = free_port()
    python = [sys.executable, "-c", TEST_TASKS_FIRST] if test_tasks else [sys.executable, "-m"]
    command = [*python, "csgoflip_jobs.ops.cli", "flower", "--port", str(port)]
    if celery_flower_args:
        celery = [*python, "celery", "-A", "csgoflip_jobs", "flower"]
        command = [*celery, "--address=127.0.0.1", f"--port={port}", *celery_flower_args]
    process = spawn_logged(command, log_path, env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_status(f"{url}/healthcheck") == 200, 30, interval=0.2)
        yield url, process
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

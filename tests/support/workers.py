"""Run real Celery workers as child processes for the tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.support.child_processes import ROOT, spawn_logged

QUEUES = "payment,notification,email"


@dataclass
class WorkerProcess:
    """One ``celery worker`` process group and its log file."""

    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        """Everything the worker has logged so far."""
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """kill -9 the worker and its pool children (the whole process group)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self, timeout: float = 15) -> None:
        """Warm shutdown (SIGTERM to the main process, as systemd does), then kill -9."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()


def start_worker(
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    concurrency: int = 2,
    queues: str = QUEUES,
    name: str = "w1",
    wait_ready: bool = True,
    pool: str = "prefork",
) -> WorkerProcess:
    """Start ``celery -A csgoflip_jobs worker`` loading the test tasks; wait until ready."""
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "csgoflip_jobs",
        "worker",
        "-Q",
        queues,
        "-I",
        "tests.support.jobs",
        "-c",
        str(concurrency),
        "-P",
        pool,
        "-n",
        f"{name}@%h",
        "-l",
        "info",
        "--without-gossip",
        "--without-mingle",
    ]
    process = spawn_logged(command, log_path, {"PYTHONUNBUFFERED": "1", **(env or {})})
    worker = WorkerProcess(process, log_path)
    if wait_ready:
        wait_for_log(worker, "ready.", timeout=30)
    return worker


def wait_for_log(worker: WorkerProcess, text: str, timeout: float) -> None:
    """Wait until the worker logged ``text``; fail with its log if it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in worker.log():
            return
        if worker.process.poll() is not None:
            raise AssertionError(f"worker exited ({worker.process.returncode}):\n{worker.log()}")
        time.sleep(0.05)
    raise AssertionError(f"worker did not log {text!r} within {timeout} s:\n{worker.log()}")


def enqueue_elsewhere(env: Mapping[str, str], statements: str, timeout: float = 120) -> None:
    """Run ``statements`` in a fresh interpreter with ``JobQueue`` imported and the test
    tasks loaded, with ``env`` added to this environment: enqueues against a private
    Redis (this process's app is bound to the test database for good)."""
    script = f"import tests.support.jobs\nfrom csgoflip_jobs import JobQueue\n{statements}"
    subprocess.run(
        [sys.executable, "-c", script],
        check=True,
        cwd=ROOT,
        timeout=timeout,
        env={**os.environ, **env},
    )

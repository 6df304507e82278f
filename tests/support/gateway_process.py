"""Run the WebSocket gateway as a child process for the tests (127.0.0.1 only)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.child_processes import spawn_logged
from tests.support.redis_servers import free_port


@dataclass
class GatewayProcess:
    """A ``csgoflip-jobs gateway`` child and its address."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def http(self) -> str:
        """Base http:// URL."""
        return f"http://127.0.0.1:{self.port}"

    def ws(self, session: str, last_id: str | None = None) -> str:
        """The /ws URL for a session id."""
        url = f"ws://127.0.0.1:{self.port}/ws?session={session}"
        return f"{url}&last_id={last_id}" if last_id else url

    def stats(self) -> dict[str, int]:
        """The gateway's /stats."""
        return dict(httpx.get(f"{self.http}/stats", timeout=5).json())

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def start_gateway(log_path: Path, env: Mapping[str, str] | None = None) -> GatewayProcess:
    """Start the gateway on a free port and wait until /healthz answers."""
    port = free_port()
    process = spawn_logged(
        [
            sys.executable,
            "-m",
            "csgoflip_jobs.ops.cli",
            "gateway",
            "--port",
            str(port),
            "--loglevel",
            "warning",
        ],
        log_path,
        env,
    )
    gateway = GatewayProcess(process, port, log_path)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{gateway.http}/healthz", timeout=1).status_code == 200:
                return gateway
        except httpx.HTTPError:
            time.sleep(0.1)
        if process.poll() is not None:
            break
    gateway.stop()
    raise AssertionError(f"gateway did not start:\n{log_path.read_text()}")

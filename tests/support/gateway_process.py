"""Run the WebSocket gateway as a child process for the tests (127.0.0.1 only)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from tests.support.child_processes import spawn_logged
from tests.support.polling import http_status
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

    def ws(self, last_id: str | None = None) -> str:
        """The /ws URL (sessions are never in it)."""
        url = f"ws://127.0.0.1:{self.port}/ws"
        return f"{url}?last_id={last_id}" if last_id else url

    @asynccontextmanager
    async def signed_in(
        self, session_id: str, last_id: str | None = None, **options: Any
    ) -> AsyncIterator[ClientConnection]:
        """A socket signed in with its first message (``options`` go to ``connect``)."""
        async with connect(self.ws(last_id), **options) as socket:
            await socket.send(json.dumps({"session": session_id}))
            yield socket

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


def start_gateway(
    log_path: Path, env: Mapping[str, str] | None = None, loglevel: str = "warning"
) -> GatewayProcess:
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
            loglevel,
        ],
        log_path,
        env,
    )
    gateway = GatewayProcess(process, port, log_path)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if http_status(f"{gateway.http}/healthz") == 200:
            return gateway
        if process.poll() is not None:
            break
        time.sleep(0.1)
    gateway.stop()
    raise AssertionError(f"gateway did not start:\n{log_path.read_text()}")

"""``csgoflip-jobs run-local``: the whole stack with a demo workload; Ctrl-C stops it all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis

from tests.redis_servers import free_port

pytestmark = pytest.mark.slow


def test_run_local_runs_the_demo_and_stops_cleanly_on_ctrl_c(
    tmp_path: Path, redis_client: redis.Redis
) -> None:
    flower_port, gateway_port = free_port(), free_port()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'local.sqlite3'}"}
    output = (tmp_path / "run-local.out").open("w+b")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "csgoflip_jobs.cli",
            "run-local",
            "--flower-port",
            str(flower_port),
            "--gateway-port",
            str(gateway_port),
        ],
        stdout=output,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
        env=env,
    )
    try:
        deadline = time.monotonic() + 120
        text = ""
        while "; balance " not in text and time.monotonic() < deadline:
            time.sleep(0.5)
            text = (tmp_path / "run-local.out").read_text(errors="replace")
            assert process.poll() is None, text
        assert "demo: withdrawal" in text and "completed; balance 7500" in text, text
        assert f"http://127.0.0.1:{flower_port}/" in text
        assert httpx.get(f"http://127.0.0.1:{flower_port}/healthcheck", timeout=5).is_success
        assert httpx.get(f"http://127.0.0.1:{gateway_port}/healthz", timeout=5).is_success
        assert (tmp_path / "var" / "logs" / "worker-payment.log").exists()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert "csgoflip-jobs: stopped" in (tmp_path / "run-local.out").read_text()
    for port in (flower_port, gateway_port):
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/", timeout=2)

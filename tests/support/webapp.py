"""Run the example web app (examples/webapp) under uvicorn for the tests."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from csgoflip_jobs.payments.database import migrate
from tests.support.child_processes import spawn_logged
from tests.support.databases import sqlite_url
from tests.support.polling import http_status, wait_until
from tests.support.redis_servers import free_port


@contextmanager
def running_webapp(
    tmp_path: Path, workers: Callable[..., Any], env: Mapping[str, str] | None = None
) -> Iterator[str]:
    """The example app on a free port (its log: ``tmp_path/webapp.log``), with a payment
    worker, on a fresh SQLite ledger; its base URL."""
    database = sqlite_url(tmp_path)
    migrate(database)
    full_env = {"DATABASE_URL": database, **(env or {})}
    workers(name="webapp-worker", queues="payment", env=full_env)
    port = free_port()
    process = spawn_logged(
        [sys.executable, "-m", "examples.webapp", "--port", str(port)],
        tmp_path / "webapp.log",
        full_env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_status(f"{url}/api/cases") == 200, 30, interval=0.2)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

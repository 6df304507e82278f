"""The platform on one machine without Docker: Redis plus one worker per queue.

Used by ``csgoflip-jobs run-local`` (the README's first command). Redis comes
from REDIS_URL when it answers; otherwise a ``redis-server`` is started on
127.0.0.1 with its data under ``var/redis`` (append-only, noeviction).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import click
import redis

from .database import migrate
from .settings import QUEUE_NAMES, get_settings

STATE_DIR = Path("var")
STOP_TIMEOUT_S = 20.0


class LocalStack:
    """Child processes of a local run, started and stopped together."""

    def __init__(self, concurrency: int = 1) -> None:
        self._concurrency = concurrency
        self._redis: subprocess.Popen[bytes] | None = None
        self._workers: dict[str, subprocess.Popen[bytes]] = {}
        self._stop = threading.Event()

    def start(self) -> None:
        """Start Redis if needed, then a worker for each queue."""
        url = self._ensure_redis()
        migrate()
        env = {**os.environ, "REDIS_URL": url}
        for queue in QUEUE_NAMES:
            self._workers[queue] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "csgoflip_jobs",
                    "worker",
                    "-Q",
                    queue,
                    "-n",
                    f"{queue}@%h",
                    "-c",
                    str(self._concurrency),
                    "-l",
                    "info",
                ],
                env=env,
                start_new_session=True,
            )
        click.echo(
            f"csgoflip-jobs: Redis {_safe(url)}; workers for {', '.join(QUEUE_NAMES)} "
            "started. Ctrl-C stops everything."
        )
        click.echo("  try:  .venv/bin/csgoflip-jobs counts")

    def wait(self) -> None:
        """Block until Ctrl-C, SIGTERM, or a child process exits."""
        while not self._stop.wait(0.5):
            for queue, process in self._workers.items():
                if process.poll() is not None:
                    click.echo(f"worker for {queue} exited with {process.returncode}", err=True)
                    return

    def request_stop(self) -> None:
        """Make :meth:`wait` return (from a signal handler)."""
        self._stop.set()

    def stop(self) -> None:
        """Warm-stop the workers (running jobs finish), then Redis if we started it."""
        for process in self._workers.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self._workers.values():
            _wait_or_kill(process)
        if self._redis is not None:
            self._redis.terminate()
            _wait_or_kill(self._redis)
        click.echo("csgoflip-jobs: stopped")

    def _ensure_redis(self) -> str:
        settings = get_settings()
        url = settings.broker_url
        if _answers(url):
            return url
        if settings.redis_url:
            raise click.ClickException(f"REDIS_URL {_safe(url)} does not answer")
        binary = shutil.which("redis-server")
        if binary is None:
            raise click.ClickException(
                "no Redis answers and redis-server is not installed (apt-get install redis-server)"
            )
        data_dir = STATE_DIR / "redis"
        data_dir.mkdir(parents=True, exist_ok=True)
        port = settings.redis_port
        self._redis = subprocess.Popen(
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--dir",
                str(data_dir),
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--maxmemory-policy",
                "noeviction",
            ],
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + 10
        while not _answers(url):
            if time.monotonic() > deadline or self._redis.poll() is not None:
                raise click.ClickException(f"could not start redis-server on port {port}")
            time.sleep(0.1)
        return url


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def _safe(url: str) -> str:
    """The URL without its password, for printing."""
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://***@{rest.split('@', 1)[1]}"


def _wait_or_kill(process: subprocess.Popen[bytes]) -> None:
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()

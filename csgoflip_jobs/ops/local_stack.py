"""The platform on one machine without Docker, for ``csgoflip-jobs run-local``.

Redis is the one ``--redis-url`` or REDIS_URL names (it must answer); else the one
REDIS_HOST/REDIS_PORT name (localhost:6379) when it answers; else a ``redis-server``
started on 127.0.0.1 with its data under ``var/redis`` (append-only, noeviction).
Which one it is, whether it persists and its maxmemory-policy are printed, with a
warning when it is not append-only and noeviction (e.g. a test Redis that keeps
nothing). The payments database (DATABASE_URL, a SQLite file by default) is
migrated; then a worker per queue, beat, Flower, the WebSocket gateway and (from a
checkout) the example web app start, each logging to ``var/logs/<name>.log``. A
short demo workload shows progress.
Ctrl-C (or SIGTERM, SIGHUP) stops everything: workers finish their running jobs
first. The children also get SIGTERM should run-local itself be killed (Linux);
a redis-server it started keeps running then, and the next run uses it.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import click
import redis

from csgoflip_jobs.helpers.connection import redacted_url
from csgoflip_jobs.ops.demo import run_demo
from csgoflip_jobs.payments.database import migrate
from csgoflip_jobs.settings import get_settings

STATE_DIR = Path("var")
STOP_TIMEOUT_S = 20.0
"""How long a stop waits, in all, for the children's warm shutdown before killing them."""
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""Signals that stop a local run (Ctrl-C, ``kill``, the terminal closing)."""
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
# Loaded before any fork: a child between fork and exec should not dlopen.
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
FLOWER_PORT = 5555
GATEWAY_PORT = 8765
WEBAPP_PORT = 8000
PROMISED_POLICY = "noeviction"
"""The maxmemory-policy of a queue Redis: a full Redis refuses jobs rather than dropping them."""


class LocalStack:
    """Child processes of a local run, started and stopped together."""

    def __init__(
        self,
        concurrency: int = 1,
        demo: bool = True,
        flower_port: int = FLOWER_PORT,
        gateway_port: int = GATEWAY_PORT,
        redis_url: str | None = None,
        webapp_port: int = WEBAPP_PORT,
    ) -> None:
        self._concurrency = concurrency
        self._webapp_port = webapp_port
        self._redis_url = redis_url
        self._demo = demo
        self._flower_port = flower_port
        self._gateway_port = gateway_port
        self._redis: subprocess.Popen[bytes] | None = None
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    def start(self) -> None:
        """Start Redis if needed, migrate, then workers, beat, Flower, the gateway and
        the example web app."""
        url = self._ensure_redis()
        report_redis(url, started_here=self._redis is not None)
        from csgoflip_jobs.celery_app import app
        from csgoflip_jobs.engine.job_queue import queue_names

        migrate()
        queues = queue_names(app)
        celery = [sys.executable, "-m", "celery", "-A", "csgoflip_jobs"]
        for queue in queues:
            self._spawn(
                f"worker-{queue}",
                [
                    *celery,
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
            )
        self._spawn("beat", [*celery, "beat", "-l", "info"])
        cli = [sys.executable, "-m", "csgoflip_jobs.ops.cli"]
        self._spawn("flower", [*cli, "flower", "--port", str(self._flower_port)])
        self._spawn("gateway", [*cli, "gateway", "--port", str(self._gateway_port)])
        webapp = self._start_webapp()
        click.echo(
            f"csgoflip-jobs: Redis {redacted_url(url)}; workers for {', '.join(queues)}, "
            "beat, Flower, the gateway and the web app started (logs in var/logs/)."
        )
        click.echo(f"  Flower:   http://127.0.0.1:{self._flower_port}/")
        click.echo(f"  Web app:  {webapp}")
        click.echo(
            f"  Gateway:  ws://127.0.0.1:{self._gateway_port}/ws   (Ctrl-C stops everything)"
        )
        if self._demo:
            run_demo(f"http://127.0.0.1:{self._gateway_port}")

    def wait(self) -> None:
        """Block until a child process exits (a stop signal raises KeyboardInterrupt)."""
        while True:
            time.sleep(0.5)
            for name, process in self._children.items():
                if process.poll() is not None:
                    click.echo(
                        f"{name} exited with {process.returncode}; see var/logs/{name}.log",
                        err=True,
                    )
                    return

    def stop(self) -> None:
        """Warm-stop everything (running jobs finish), then Redis if we started it.

        Every child gets SIGTERM at once and they share one STOP_TIMEOUT_S; what is
        still running then is killed. Further stop signals are ignored meanwhile.
        """
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)  # also when stopping for another reason
        for process in self._children.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for process in self._children.values():
            _wait_or_kill(process, deadline)
        if self._redis is not None:
            self._redis.terminate()
            _wait_or_kill(self._redis, time.monotonic() + STOP_TIMEOUT_S)
        click.echo("csgoflip-jobs: stopped")

    def _start_webapp(self) -> str:
        """Start the example web app when this is a checkout; what to print of it."""
        root = Path(__file__).resolve().parents[2]  # the checkout, with examples/
        if not (root / "examples" / "webapp" / "app.py").is_file():
            return "not started (examples/webapp comes with a checkout of the project)"
        path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
        command = [sys.executable, "-m", "examples.webapp", "--port", str(self._webapp_port)]
        self._spawn("webapp", command, env={**os.environ, "PYTHONPATH": path})
        return f"http://127.0.0.1:{self._webapp_port}/   (examples/webapp)"

    def _spawn(self, name: str, command: list[str], env: dict[str, str] | None = None) -> None:
        logs = STATE_DIR / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with (logs / f"{name}.log").open("ab") as log:
            self._children[name] = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
                preexec_fn=partial(_die_with_parent, os.getpid()),
            )

    def _ensure_redis(self) -> str:
        if self._redis_url is not None:
            # Chosen with --redis-url: the settings of this process (the demo) and of
            # every child (they inherit the environment) must name the same Redis.
            os.environ["REDIS_URL"] = self._redis_url
            get_settings.cache_clear()
        settings = get_settings()
        if settings.uses_sentinel:
            raise click.ClickException(
                "run-local runs on one Redis, not a Sentinel group: unset REDIS_SENTINELS "
                "(the Sentinel stack is `docker compose --profile ha up`)"
            )
        url = settings.broker_url
        if _answers(url):
            return url
        if settings.redis_url:
            raise click.ClickException(
                f"Redis {redacted_url(url)} (--redis-url or REDIS_URL) does not answer"
            )
        binary = shutil.which("redis-server")
        if binary is None:
            raise click.ClickException(
                "no Redis answers and redis-server is not installed (apt-get install redis-server)"
            )
        data_dir = STATE_DIR / "redis"
        data_dir.mkdir(parents=True, exist_ok=True)
        self._redis = subprocess.Popen(
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(settings.redis_port),
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
            # No death signal: should run-local be killed, the workers' warm shutdown
            # still needs Redis to record and ack their last jobs. It keeps running
            # with its data, and the next run-local uses it.
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while not _answers(url):
            if time.monotonic() > deadline or self._redis.poll() is not None:
                raise click.ClickException(f"could not start redis-server for {redacted_url(url)}")
            time.sleep(0.1)
        return url


@dataclass(frozen=True)
class RedisDurability:
    """What a Redis says of its persistence and eviction (CONFIG GET); every field is
    None when it refuses to say (CONFIG renamed or not allowed), ``refusal`` says why."""

    appendonly: bool | None
    appendfsync: str | None
    save: str | None
    policy: str | None
    refusal: str | None = None

    @property
    def persistence(self) -> str:
        """AOF and/or RDB with their settings, "none", or "unknown"."""
        if self.appendonly is None:
            return f"unknown ({self.refusal})"
        rdb = f"RDB (save {self.save})" if self.save else ""
        if self.appendonly:
            return f"AOF (appendfsync {self.appendfsync})" + (f" + {rdb}" if rdb else "")
        return rdb or "none"

    def shortfalls(self) -> list[str]:
        """How it falls short of the append-only, noeviction Redis run-local promises."""
        if self.appendonly is None:
            return [f"its persistence and maxmemory-policy are unknown ({self.refusal})"]
        found = []
        if not self.appendonly:
            found.append(
                "no append-only file: a restart loses jobs"
                + (" written since the last RDB snapshot" if self.save else "")
            )
        if self.policy != PROMISED_POLICY:
            found.append(f"maxmemory-policy {self.policy}: jobs can be evicted")
        return found


def redis_durability(url: str) -> RedisDurability:
    """Ask the Redis at ``url`` (which answers) how it persists and evicts."""
    client = redis.Redis.from_url(
        url, socket_connect_timeout=2, socket_timeout=5, decode_responses=True
    )
    try:
        config = client.config_get("appendonly", "appendfsync", "save", "maxmemory-policy")
    except redis.ResponseError as exc:
        return RedisDurability(None, None, None, None, refusal=f"CONFIG GET refused: {exc}")
    finally:
        client.close()
    return RedisDurability(
        appendonly=config.get("appendonly") == "yes",
        appendfsync=config.get("appendfsync") or "",
        save=config.get("save") or "",
        policy=config.get("maxmemory-policy") or "",
    )


def report_redis(url: str, started_here: bool) -> None:
    """Print which Redis this run uses (no password), how it persists and evicts, and a
    warning to stderr when it is not the append-only, noeviction one promised."""
    durability = redis_durability(url)
    origin = f"started here, data in {STATE_DIR / 'redis'}" if started_here else "already running"
    click.echo(f"csgoflip-jobs: Redis {redacted_url(url)} ({origin})")
    click.echo(
        f"  persistence: {durability.persistence}; "
        f"maxmemory-policy: {durability.policy or 'unknown'}"
    )
    shortfalls = durability.shortfalls()
    if shortfalls:
        click.echo(
            f"csgoflip-jobs: WARNING: this Redis is not the append-only, {PROMISED_POLICY} "
            f"one run-local promises: {'; '.join(shortfalls)}. Stop it to have run-local "
            f"start its own in {STATE_DIR / 'redis'}, or choose one with --redis-url.",
            err=True,
        )


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def install_stop_signals() -> None:
    """Make Ctrl-C, SIGTERM and SIGHUP raise KeyboardInterrupt once, in the main thread.

    Set here, not inherited: a shell starts background jobs with SIGINT ignored,
    and Ctrl-C or ``kill -INT`` must stop the stack however it was started. An
    ignored SIGHUP stays ignored: that is nohup asking to outlive the terminal.
    The first signal ignores the rest, so a second Ctrl-C (or the terminal's
    SIGHUP after it) cannot interrupt the stop it started.
    """
    for signum in STOP_SIGNALS:
        if signum != signal.SIGHUP or signal.getsignal(signum) != signal.SIG_IGN:
            signal.signal(signum, _stop_once)


def _stop_once(signum: int, frame: object) -> None:
    for other in STOP_SIGNALS:
        signal.signal(other, signal.SIG_IGN)
    raise KeyboardInterrupt


def _wait_or_kill(process: subprocess.Popen[bytes], deadline: float) -> None:
    try:
        process.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _die_with_parent(parent: int) -> None:
    """Run in each child before exec: SIGTERM it when run-local (``parent``) dies,
    even by SIGKILL.

    Children run in their own sessions (a Ctrl-C reaches run-local alone, which
    stops them in order), so without this they would outlive a killed run-local.
    Linux only; elsewhere a killed run-local leaves its children running.
    """
    if _LIBC is None:
        return
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # run-local died before prctl took effect
        os._exit(1)

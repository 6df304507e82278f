"""Run Celery's integration suite on stock Celery and on the platform, then compare.

Started by scripts/celery-compat.sh, with the compatibility venv's Python, after it
built that venv and extracted the suite. Each mode gets a private ``redis-server`` on
a free loopback port (never the shared 127.0.0.1:6379, where other tests run), with
the settings the platform requires of its queue Redis (``noeviction``, no persistence
needed for a throwaway run), so the two modes cannot see each other's keys and nothing
is left behind. The modes run one after the other: run side by side they would compete
for the CPU and their wall times could not be compared.

Each mode writes ``<out>/<mode>/``: ``junit.xml`` (the results), ``pytest.log``
(pytest's output, with a line per test), ``worker.log`` (every log record of the run,
the worker's and its pool processes' included: the causes of failures), ``run.json``
(the command and its wall time) and the Redis server's log. Then report.py compares
the two junit files.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import redis

from csgoflip_jobs.settings import Settings

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import report  # noqa: E402 - a sibling module: this directory is not a package

MODULES = {"tasks": "test_tasks.py", "canvas": "test_canvas.py"}
"""The suite's modules this job runs, by short name (issue 33)."""

MODES = ("stock", "platform")

PLATFORM_PLUGIN = "csgoflip_compat_platform"
"""The pytest plugin (a module beside this file) that builds the suite's apps as the
platform's."""


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The command line of scripts/celery-compat.sh (``--suite`` and ``--out`` are its own)."""
    parser = argparse.ArgumentParser(
        prog="scripts/celery-compat.sh",
        description="Celery's integration suite on stock Celery and on the platform.",
    )
    parser.add_argument("--suite", type=Path, required=True, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, required=True, help=argparse.SUPPRESS)
    parser.add_argument(
        "--modules",
        default="tasks,canvas",
        help="comma list of the suite's modules: tasks, canvas (default: both)",
    )
    parser.add_argument(
        "--modes",
        default=",".join(MODES),
        help="comma list: stock, platform (default: both, one after the other)",
    )
    parser.add_argument("-k", dest="keyword", help="pytest -k expression, for both modes")
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds one test may take (pytest-timeout; the suite's own "
        "@pytest.mark.timeout marks win), default 60",
    )
    parser.add_argument(
        "--session-timeout",
        type=float,
        default=None,
        help="seconds a whole mode may take (pytest-timeout's --session-timeout), default none",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: compare the results the last runs left",
    )
    parser.add_argument(
        "pytest_args",
        nargs=argparse.REMAINDER,
        help="after --: more pytest arguments, for both modes",
    )
    args = parser.parse_args(argv)
    args.module_files = _choices(args.modules, MODULES, "--modules")
    args.mode_list = _choices(args.modes, {m: m for m in MODES}, "--modes")
    if args.pytest_args[:1] == ["--"]:
        args.pytest_args = args.pytest_args[1:]
    return args


def _choices(value: str, known: dict[str, str], option: str) -> list[str]:
    chosen = []
    for name in (part.strip() for part in value.split(",") if part.strip()):
        name = name.removeprefix("test_").removesuffix(".py")
        if name not in known:
            raise SystemExit(
                f"celery-compat: {option}: unknown {name!r} (one of {', '.join(known)})"
            )
        chosen.append(known[name])
    if not chosen:
        raise SystemExit(f"celery-compat: {option}: none given")
    return chosen


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def private_redis(directory: Path) -> Iterator[int]:
    """A ``redis-server`` of this run on a free loopback port, stopped afterwards.

    ``noeviction`` because the platform refuses (and the suite would silently lose
    messages on) a broker that evicts; no RDB or AOF because the data is thrown away.
    """
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [
        "redis-server",
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(directory),
        "--save", "",
        "--appendonly", "no",
        "--maxmemory-policy", "noeviction",
        "--logfile", str(directory / "redis.log"),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(
                        f"celery-compat: redis-server on port {port} did not start "
                        f"(see {directory / 'redis.log'})"
                    ) from None
                time.sleep(0.05)
        client.close()
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def mode_environment(mode: str, port: int, directory: Path) -> dict[str, str]:
    """The environment of one mode's pytest.

    Every variable the platform reads (csgoflip_jobs.settings) is dropped first, so a
    REDIS_URL or REDIS_SENTINELS of the calling shell cannot point either mode at
    another Redis. The suite reads TEST_BROKER / TEST_BACKEND (its apps) and
    REDIS_HOST / REDIS_PORT (the client some tests inspect Redis with); the platform
    reads REDIS_URL, and in platform mode the suite's broker and backend URLs are
    replaced by the platform's, which name the same server. The suite's worker logs at
    WORKER_LOGLEVEL (default ERROR; the caller's is kept): test_trace_log_arguments
    needs INFO, but with INFO a short run hung on its reruns (issue 33's report).
    """
    settings_names = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k.upper() not in settings_names}
    url = f"redis://127.0.0.1:{port}/0"
    env.update(
        TEST_BROKER=url,
        TEST_BACKEND=url,
        REDIS_HOST="127.0.0.1",
        REDIS_PORT=str(port),
        PYTHONDONTWRITEBYTECODE="1",
    )
    if mode == "platform":
        env.update(
            REDIS_URL=url,
            APP_ENV="test",
            DATABASE_URL=f"sqlite:///{directory / 'payments.sqlite3'}",
            PYTHONPATH=os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")])),
        )
    return env


def pytest_command(args: argparse.Namespace, mode: str, directory: Path) -> list[str]:
    """pytest for one mode, run in the suite's directory (its pyproject.toml is the
    suite's pytest configuration: --strict-markers, its markers, xfail_strict)."""
    command = [
        sys.executable, "-m", "pytest",
        *(f"t/integration/{module}" for module in args.module_files),
        "-p", "no:cacheprovider",
        # Celery's fixtures (celery_parameters, celery_worker_parameters ...), which
        # Celery's own CI gets from pytest-celery's entry point; Celery documents -p.
        "-p", "celery.contrib.pytest",
        "-v", "-ra",
        f"--timeout={args.timeout:g}",
        f"--junitxml={directory / 'junit.xml'}",
        "-o", "junit_family=xunit2",
        "-o", "junit_logging=all",
        "-o", "junit_log_passing_tests=false",
        f"--log-file={directory / 'worker.log'}",
        "--log-file-level=INFO",
    ]  # fmt: skip
    if args.session_timeout:
        command.append(f"--session-timeout={args.session_timeout:g}")
    if args.keyword:
        command += ["-k", args.keyword]
    if mode == "platform":
        command += ["-p", PLATFORM_PLUGIN]
    return command + list(args.pytest_args)


def run_mode(args: argparse.Namespace, mode: str) -> int:
    """Run the suite in one mode; pytest's exit status."""
    directory = (args.out / mode).resolve()
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    suite = args.suite.resolve()
    with private_redis(directory / "redis") as port:
        command = pytest_command(args, mode, directory)
        env = mode_environment(mode, port, directory)
        print(
            f"celery-compat: {mode}: {' '.join(args.module_files)} on redis 127.0.0.1:{port}, "
            f"log in {directory / 'pytest.log'}",
            flush=True,
        )
        started = time.monotonic()
        with (directory / "pytest.log").open("wb") as log:
            status = subprocess.run(command, cwd=suite, env=env, stdout=log, stderr=log).returncode
        wall_s = time.monotonic() - started
    run = {
        "mode": mode,
        "modules": args.module_files,
        "keyword": args.keyword,
        "timeout_s": args.timeout,
        "wall_s": round(wall_s, 1),
        "pytest_exit_status": status,
        "command": command,
        "cwd": str(suite),
    }
    (directory / "run.json").write_text(json.dumps(run, indent=2) + "\n")
    tail = (directory / "pytest.log").read_text(errors="replace").strip().splitlines()[-1:]
    print(f"celery-compat: {mode}: {wall_s:.0f} s, pytest exit {status}: {''.join(tail)}")
    return status


def main(argv: Sequence[str]) -> int:
    """Run the chosen modes, then print the comparison; the job's exit status."""
    args = parse_args(argv)
    crashed = False
    if not args.report_only:
        for mode in args.mode_list:
            # 0: all passed, 1: some failed; anything else (interrupted, usage error,
            # internal error, no test collected) means the run itself did not work.
            crashed |= run_mode(args, mode) not in (0, 1)
    expected = HERE / "expected-failures.txt"
    status = report.main([str(args.out), "--expected", str(expected)])
    return status or int(crashed)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""``csgoflip-jobs run-local``: the whole stack with a demo workload; Ctrl-C stops it all."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import httpx
import pytest
import redis
from websockets.asyncio.client import connect

from tests.support.polling import http_status, wait_until
from tests.support.redis_servers import free_port, start_redis

pytestmark = pytest.mark.slow

Launch = Callable[..., tuple[subprocess.Popen[bytes], int, int, int]]


def state_and_parent(pid: int) -> tuple[str, int] | None:
    """A process's state letter and parent pid from /proc; None once it is gone."""
    try:
        # "pid (comm) state ppid ...": comm may hold spaces, so split after ")".
        state, ppid = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[:2]
    except OSError:
        return None
    return state, int(ppid)


def alive(pid: int) -> bool:
    found = state_and_parent(pid)
    return found is not None and found[0] != "Z"


def children_of(pid: int) -> set[int]:
    """Live (not zombie) processes whose parent is ``pid``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = state_and_parent(int(entry.name))
            if stat is not None and stat[0] != "Z" and stat[1] == pid:
                found.add(int(entry.name))
    return found


def working_in(directory: Path) -> set[int]:
    """Live processes whose working directory is ``directory``."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cwd").resolve() == directory.resolve():
                found.add(int(entry.name))
        except OSError:
            continue  # exited, or not ours to read
    return {pid for pid in found if alive(pid)}


@pytest.fixture
def launch(tmp_path: Path, redis_client: redis.Redis) -> Iterator[Launch]:
    """Start run-local in tmp_path; whatever it leaves running is killed afterwards."""
    started: list[subprocess.Popen[bytes]] = []

    def start(
        *args: str, ignore: tuple[signal.Signals, ...] = ()
    ) -> tuple[subprocess.Popen[bytes], int, int, int]:
        flower_port, gateway_port, webapp_port = free_port(), free_port(), free_port()
        env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'local.sqlite3'}"}
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "csgoflip_jobs.ops.cli",
                "run-local",
                "--flower-port",
                str(flower_port),
                "--gateway-port",
                str(gateway_port),
                "--webapp-port",
                str(webapp_port),
                *args,
            ],
            stdout=(tmp_path / "run-local.out").open("w+b"),
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            env=env,
            preexec_fn=partial(ignore_signals, ignore),
        )
        started.append(process)
        return process, flower_port, gateway_port, webapp_port

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()
    # Whatever a failed test left (also after run-local died): every process working
    # in tmp_path gets SIGTERM (warm shutdowns that also end their pool processes),
    # and SIGKILL if still alive after 30 s.
    leftovers = working_in(tmp_path)
    for pid in leftovers:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in leftovers) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in leftovers:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def ignore_signals(signums: tuple[signal.Signals, ...]) -> None:
    """In the child before exec: ignore ``signums``, as a shell does for a background
    job (SIGINT) or nohup (SIGHUP); the ignored state is inherited across exec."""
    for signum in signums:
        signal.signal(signum, signal.SIG_IGN)


def output(tmp_path: Path) -> str:
    return (tmp_path / "run-local.out").read_text(errors="replace")


def test_run_local_runs_the_demo_and_stops_cleanly_on_ctrl_c(
    tmp_path: Path, launch: Launch
) -> None:
    # Started with SIGINT ignored (a background job of a script): Ctrl-C must still work.
    process, flower_port, gateway_port, webapp_port = launch(ignore=(signal.SIGINT,))
    deadline = time.monotonic() + 120
    while "; balance " not in output(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.5)
        assert process.poll() is None, output(tmp_path)
    text = output(tmp_path)
    assert "demo: withdrawal" in text and "completed; balance 7500" in text, text
    assert f"http://127.0.0.1:{flower_port}/" in text
    assert httpx.get(f"http://127.0.0.1:{flower_port}/healthcheck", timeout=5).is_success
    assert httpx.get(f"http://127.0.0.1:{gateway_port}/healthz", timeout=5).is_success
    assert (tmp_path / "var" / "logs" / "worker-payment.log").exists()
    children = children_of(process.pid)
    assert len(children) == 7  # three workers, beat, Flower, the gateway, the web app
    assert f"Web app:  http://127.0.0.1:{webapp_port}/" in text
    webapp = f"http://127.0.0.1:{webapp_port}"
    wait_until(lambda: http_status(f"{webapp}/api/cases", 5) == 200, 30, interval=0.2)
    assert "Chroma Case" in httpx.get(f"{webapp}/api/cases", timeout=5).text
    session_id, ticket = open_the_demo_link(text, gateway_port)

    # Ctrl-C and, right behind it, a SIGTERM: the second must not break off the stop.
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0, output(tmp_path)
    assert "csgoflip-jobs: stopped" in output(tmp_path)
    assert not any(alive(pid) for pid in children)
    assert "Warm shutdown" in (tmp_path / "var" / "logs" / "worker-payment.log").read_text()
    for port in (flower_port, gateway_port, webapp_port):
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
    # Nothing run-local keeps holds the session id or the ticket the demo link used.
    for log in (tmp_path / "var" / "logs").iterdir():
        kept = log.read_text(errors="replace")
        assert session_id not in kept and ticket not in kept, log


def open_the_demo_link(text: str, gateway_port: int) -> tuple[str, str]:
    """Do what the demo page does with the printed /demo#<ticket> link: trade the ticket
    for the session cookie, then open the live socket; (the session id, the ticket)."""
    found = re.search(r"/demo#([\w-]+)", text)
    assert found, text
    ticket, gateway = found.group(1), f"http://127.0.0.1:{gateway_port}"
    answer = httpx.post(f"{gateway}/session", json={"ticket": ticket},
                        headers={"Origin": gateway}, timeout=5)  # fmt: skip
    assert answer.status_code == 204, answer.text
    session_id = answer.cookies["session"]

    async def live() -> None:
        headers = {"Cookie": f"session={session_id}", "Origin": gateway}
        url = f"ws://127.0.0.1:{gateway_port}/ws"
        async with connect(url, additional_headers=headers) as socket:
            await asyncio.wait_for(socket.recv(), 10)  # a notification the demo sent

    asyncio.run(live())
    return session_id, ticket


def test_run_local_under_nohup_outlives_sighup_and_its_children_die_with_it(
    tmp_path: Path, launch: Launch
) -> None:
    process, flower_port, gateway_port, _ = launch("--no-demo", ignore=(signal.SIGHUP,))
    wait_until(lambda: "Ctrl-C stops everything" in output(tmp_path), 60, interval=0.2)
    children = children_of(process.pid)
    assert len(children) == 7
    email_log = tmp_path / "var" / "logs" / "worker-email.log"
    wait_until(lambda: "ready." in email_log.read_text(errors="replace"), 60, interval=0.2)
    health = f"http://127.0.0.1:{gateway_port}/healthz"
    wait_until(lambda: http_status(health, 5) == 200, 30, interval=0.2)
    process.send_signal(signal.SIGHUP)  # started under nohup: the terminal closing is no stop
    time.sleep(2)  # a stop would have sent every child SIGTERM by now
    assert process.poll() is None and all(alive(pid) for pid in children)
    assert http_status(health, 5) == 200

    process.kill()
    process.wait()
    # Each child got SIGTERM when its parent died: warm shutdowns, then gone.
    wait_until(lambda: not any(alive(pid) for pid in children), 30, interval=0.2)
    assert "Warm shutdown" in email_log.read_text()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{flower_port}/", timeout=2)


def test_run_local_on_a_chosen_redis_names_it_and_warns_that_it_keeps_nothing(
    tmp_path: Path, launch: Launch
) -> None:
    """``--redis-url`` wins over REDIS_URL (the test database here): the workers use
    it too, and run-local says which Redis it is, without its password."""
    password = "s3cret-run-local"
    chosen = start_redis("--requirepass", password)  # keeps nothing, as test.sh's Redis
    try:
        process, _, _, _ = launch("--no-demo", "--redis-url", chosen.url_with_password(password))
        wait_until(lambda: "Ctrl-C stops everything" in output(tmp_path), 60, interval=0.2)
        text = output(tmp_path)
        assert f"csgoflip-jobs: Redis redis://:**@127.0.0.1:{chosen.port}/0 (already running)" in (
            text
        )
        assert "persistence: none; maxmemory-policy: noeviction" in text
        assert "WARNING: this Redis is not the append-only, noeviction one" in text
        assert password not in text
        log = tmp_path / "var" / "logs" / "worker-payment.log"
        connected = f"Connected to redis://:**@127.0.0.1:{chosen.port}/0"
        wait_until(lambda: connected in log.read_text(errors="replace"), 60, interval=0.2)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0, output(tmp_path)
    finally:
        chosen.stop()

"""Sentinel failover under load: a master, one replica and three sentinels on 127.0.0.1,
two workers and an enqueuing process running 1,700 jobs while the master is killed
with SIGKILL three times in a row (back and forth: each killed master is restarted,
rejoins as a replica, and is the one promoted at the next kill).

Nothing is told about the failovers: the workers, the enqueuing process and the
helpers of this process find the new master through the sentinels by themselves.
Each run prints jobs in (accepted: ``add``/``add_bulk`` returned), jobs out (ran),
duplicates, lost (accepted, never ran) and the time to recover of every failover.

* ``REDIS_MIN_REPLICAS_ACK=1``: an add returns only once the replica holds the job,
  so no accepted job may be lost; while the killed master has not rejoined there is
  no replica and adds fail with BrokerNotReplicatedError, and are made again.
* ``REDIS_MIN_REPLICAS_ACK=0``: what an add the master acknowledged but had not yet
  replicated when it died costs is measured and reported (docs/reliability.md).

Runs record themselves in a file, not in Redis, so the count survives what a failover
loses.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import redis

from csgoflip_jobs import keys
from csgoflip_jobs.helpers.connection import make_client
from csgoflip_jobs.helpers.rate_limit import RateLimitService
from csgoflip_jobs.helpers.sessions import SessionService
from csgoflip_jobs.settings import Settings, get_settings
from tests.support.child_processes import spawn_logged
from tests.support.environment import forget_settings
from tests.support.polling import wait_until
from tests.support.sentinels import SentinelGroup, start_sentinel_group
from tests.support.workers import WorkerProcess

pytestmark = [pytest.mark.slow, pytest.mark.fault]

JOBS = 1700
RATE = 40
"""Jobs a second the enqueuing process adds. A killed master takes about 13 s to rejoin
(the sentinels wait 8 s before turning it into a replica), and the next kill waits for
that: the third kill comes some 33 s in, and the run must still be adding then."""
KILL_AFTER = (200, 500, 800)
"""Accepted jobs before each kill (each also waits for the previous master to rejoin)."""
UNFINISHED_STATES = (b"waiting", b"active", b"delayed")
"""Job record states of a job that will still run."""
ACK_TIMEOUT_MS = 500
RECOVERY_BOUND_S = 30.0

CLIENT_ENV = {
    # Small bounds, so an add against a dead master fails fast and is made again.
    "REDIS_CONNECT_TIMEOUT_S": "0.5",
    "REDIS_COMMAND_TIMEOUT_S": "1",
    "REDIS_MAX_RETRIES": "3",
    "REDIS_REPLICA_ACK_TIMEOUT_MS": str(ACK_TIMEOUT_MS),
}


@dataclass
class Failover:
    """One kill and what followed, in seconds after the kill."""

    killed: int
    promoted: int
    promoted_after_s: float
    rejoined_after_s: float = 0.0
    enqueue_back_after_s: float | None = None
    workers_back_after_s: float | None = None
    killed_at: float = 0.0


@dataclass
class Outcome:
    """What one run counted."""

    accepted: set[int] = field(default_factory=set)
    runs: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    ended: str = ""
    """Why and when the wait for the last runs ended."""

    @property
    def lost(self) -> list[int]:
        """Accepted, never ran."""
        return sorted(self.accepted - set(self.runs))

    @property
    def duplicates(self) -> list[int]:
        """Ran more than once."""
        return sorted(n for n, count in self.runs.items() if count > 1)


def read_journal(path: Path) -> list[dict[str, Any]]:
    """The enqueuing process's events so far."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_runs(path: Path) -> list[dict[str, Any]]:
    """One record per run of a job, as the workers wrote them."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def reached(journal: Path, count: int) -> bool:
    """True once ``count`` jobs were accepted."""
    accepted = sum(len(e["accepted"]) for e in read_journal(journal) if "accepted" in e)
    return accepted >= count


@pytest.fixture
def group() -> Iterator[SentinelGroup]:
    """A master, one replica and three sentinels (down after 1.5 s, failover timeout 2 s)."""
    started = start_sentinel_group(replicas=1, sentinels=3)
    yield started
    started.stop()


@pytest.fixture
def point_here(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[dict[str, str]], Settings]]:
    """Point this process's settings (and so its helpers) at other variables."""

    def point(env: dict[str, str]) -> Settings:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        forget_settings()
        return get_settings()

    yield point
    forget_settings()  # monkeypatch restores the environment right after this


def recover_times(
    failover: Failover, journal: list[dict[str, Any]], runs: list[dict[str, Any]]
) -> None:
    """When, after the kill, an add was accepted again, and a job first tried after the
    kill ran (the workers took new work from the new master)."""
    kill = failover.killed_at
    tried_at: dict[tuple[int, ...], float] = {}
    accepted = []
    for event in journal:
        if "try" in event:
            tried_at[tuple(event["try"])] = event["at"]
        elif "accepted" in event and tried_at[tuple(event["accepted"])] > kill:
            accepted.append(event["at"])  # a call made after the kill, not one in flight
    if accepted:
        failover.enqueue_back_after_s = round(min(accepted) - kill, 2)
    tried_after = {n for e in journal if "try" in e and e["at"] > kill for n in e["try"]}
    first_run = [r["at"] for r in runs if r["n"] in tried_after]
    if first_run:
        failover.workers_back_after_s = round(min(first_run) - kill, 2)


def assert_no_platform_writes(group: SentinelGroup, port: int) -> None:
    """The restarted old master, now a replica, ran no command of the platform's: no
    script (the scripts reach replicas as their effects, never as EVALSHA), no BRPOP of
    a worker waiting on the wrong server, and no write refused as READONLY."""
    node = group.node(port)
    commands = node.info("commandstats")
    errors = node.info("errorstats")
    ours = {
        name: commands[name]
        for name in ("cmdstat_evalsha", "cmdstat_eval", "cmdstat_brpop")
        if name in commands
    }
    assert ours == {}, f"the old master on {port} ran platform commands: {ours}"
    assert "errorstat_READONLY" not in errors, errors


def check_helpers(sessions: SessionService, limiter: RateLimitService, session_id: str) -> None:
    """Sessions and rate limits work on the new master, with the clients made before."""
    assert sessions.validate(session_id) is not None, "the session did not survive the failover"
    assert limiter.is_rate_limited("ha:spent", 3, 600), "the rate-limit counter was lost"
    fresh = f"ha:fresh:{time.monotonic_ns()}"
    assert not limiter.is_rate_limited(fresh, 1, 600)
    assert limiter.is_rate_limited(fresh, 1, 600)


def run_failovers(
    group: SentinelGroup,
    workers: Callable[..., WorkerProcess],
    point_here: Callable[[dict[str, str]], Settings],
    tmp_path: Path,
    replicas_ack: int,
) -> tuple[Outcome, list[Failover]]:
    env = {**group.env, **CLIENT_ENV, "REDIS_MIN_REPLICAS_ACK": str(replicas_ack)}
    settings = point_here(env)
    client = make_client(settings.broker_url, settings)
    sessions, limiter = SessionService(client), RateLimitService(client)
    session = sessions.create(42, {"ip": "203.0.113.7"})
    for _ in range(4):
        limiter.is_rate_limited("ha:spent", 3, 600)
    pool = [workers(name=f"ha{n}", env=env) for n in range(2)]
    journal, runs = tmp_path / "journal.jsonl", tmp_path / "runs.jsonl"
    command = [
        sys.executable,
        "-m",
        "tests.support.failover_enqueuer",
        str(journal),
        str(runs),
        str(JOBS),
        str(RATE),
    ]
    enqueuer = spawn_logged(command, tmp_path / "enqueuer.log", env)
    failovers: list[Failover] = []
    try:
        for threshold in KILL_AFTER:
            wait_until(partial(reached, journal, threshold), 120, interval=0.1)
            old = group.master_port()
            killed_at = time.time()
            group.kill(old)
            new = group.wait_promoted(old)
            failover = Failover(old, new, round(time.time() - killed_at, 2), killed_at=killed_at)
            check_helpers(sessions, limiter, session.id)
            group.restart(old)
            group.wait_replica_of(old, new)
            failover.rejoined_after_s = round(time.time() - killed_at, 2)
            assert_no_platform_writes(group, old)
            failovers.append(failover)
        assert enqueuer.wait(timeout=240) == 0, (tmp_path / "enqueuer.log").read_text()
        outcome = Outcome()
        wait_for_the_end(group, journal, runs, outcome)
    finally:
        if enqueuer.poll() is None:
            enqueuer.kill()
    dead = [w for w in pool if w.process.poll() is not None]
    assert not dead, "a worker died:\n" + "\n".join(w.log()[-6000:] for w in dead)
    events, records = read_journal(journal), read_runs(runs)
    for failover in failovers:
        recover_times(failover, events, records)
    return outcome, failovers


def wait_for_the_end(group: SentinelGroup, journal: Path, runs: Path, outcome: Outcome) -> None:
    """Until every accepted job ran, or nothing is left to run and no run came for 5 s:
    a lost job never runs. Left to run: a message on the queue or unacked, or a job not
    yet run whose record still reads unfinished (once, after a failover, such a job's
    message was on neither for about 40 s; then it ran, once)."""
    events = read_journal(journal)
    outcome.accepted = {n for e in events if "accepted" in e for n in e["accepted"]}
    outcome.errors = Counter(e["error"] for e in events if "error" in e)
    quiet_since = time.monotonic()
    seen = -1
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        records = read_runs(runs)
        outcome.runs = Counter(r["n"] for r in records)
        if not outcome.lost:
            time.sleep(2)  # a duplicate delivery would show up now
            outcome.runs = Counter(r["n"] for r in read_runs(runs))
            return
        if len(records) != seen:
            seen, quiet_since = len(records), time.monotonic()
        master = group.node(group.master_port())
        idle = master.hlen("unacked") == 0 and master.llen("notification") == 0
        if idle and time.monotonic() - quiet_since > 5 and not still_to_run(master, outcome):
            outcome.ended = f"idle at {time.time():.3f}"
            return
        time.sleep(0.5)
    outcome.ended = f"deadline at {time.time():.3f}"


def still_to_run(master: redis.Redis, outcome: Outcome) -> bool:
    """True while an accepted job that has not run yet reads unfinished on ``master``
    (read only once the queue looks idle: by then few jobs are left unrun)."""
    return any(
        master.hget(keys.job_key("notification", f"ha-{n}"), "state") in UNFINISHED_STATES
        for n in outcome.lost
    )


def describe_lost(group: SentinelGroup, lost: list[int], runs: Path) -> str:
    """Where each lost job is, read from the master: its record, its events, and the
    lengths of every list and of the unacked hash; and whether it has run since."""
    ran_since = sorted({r["n"] for r in read_runs(runs)} & set(lost))
    master = group.node(group.master_port())
    events: list[tuple[bytes, dict[bytes, bytes]]] = master.xrange(  # type: ignore[assignment]
        keys.events_key("notification")
    )
    lines = []
    for n in lost[:5]:
        job_id = f"ha-{n}"
        record: dict[bytes, bytes] = master.hgetall(keys.job_key("notification", job_id))  # type: ignore[assignment]
        shown = {k.decode(): v.decode(errors="replace")[:200] for k, v in record.items()}
        history = [
            {k.decode(): v.decode(errors="replace")[:80] for k, v in fields.items()}
            for _id, fields in events
            if fields.get(b"job_id") == job_id.encode()
        ]
        lines.append(f"{job_id}: record {shown}; events {history}")
    lists = {
        repr(key): master.llen(key)
        for key in master.scan_iter(count=1000)
        if master.type(key) == b"list"
    }
    lines.append(f"lists {lists}; unacked {master.hlen(keys.KOMBU_UNACKED_KEY)}")
    lines.append(f"now {time.time():.3f}; ran since the count: {ran_since}")
    return "\n".join(lines)


def report(mode: str, outcome: Outcome, failovers: list[Failover]) -> None:
    """Print the counts and, per failover, the times to recover."""
    out = len(set(outcome.runs) & outcome.accepted)
    print(
        f"\n[{mode}] jobs in {len(outcome.accepted)}, jobs out {out}, "
        f"runs {sum(outcome.runs.values())}, "
        f"duplicates {len(outcome.duplicates)} {outcome.duplicates[:10]}, "
        f"lost {len(outcome.lost)} {outcome.lost[:10]}, add errors {dict(outcome.errors)}"
    )
    for number, f in enumerate(failovers, 1):
        print(
            f"[{mode}] failover {number}: {f.killed} -> {f.promoted}: "
            f"promoted after {f.promoted_after_s} s, "
            f"adds accepted again after {f.enqueue_back_after_s} s, "
            f"new jobs running after {f.workers_back_after_s} s, "
            f"old master rejoined as a replica after {f.rejoined_after_s} s"
        )


def assert_recovered(failovers: list[Failover]) -> None:
    assert len(failovers) == 3
    assert failovers[0].killed == failovers[1].promoted == failovers[2].killed  # back and forth
    for f in failovers:
        assert f.enqueue_back_after_s is not None and f.enqueue_back_after_s < RECOVERY_BOUND_S, f
        assert f.workers_back_after_s is not None and f.workers_back_after_s < RECOVERY_BOUND_S, f


def test_durable_enqueue_loses_no_accepted_job_over_three_failovers(
    group: SentinelGroup,
    workers: Callable[..., WorkerProcess],
    point_here: Callable[[dict[str, str]], Settings],
    tmp_path: Path,
) -> None:
    outcome, failovers = run_failovers(group, workers, point_here, tmp_path, replicas_ack=1)
    report("REDIS_MIN_REPLICAS_ACK=1", outcome, failovers)
    assert len(outcome.accepted) == JOBS
    assert outcome.lost == [], (
        f"{outcome.ended}\n{describe_lost(group, outcome.lost, tmp_path / 'runs.jsonl')}"
    )
    assert_recovered(failovers)
    # With no replica until the killed master rejoined, adds were refused as not
    # replicated, and made again.
    assert outcome.errors["BrokerNotReplicatedError"] > 0


def test_without_durable_enqueue_the_loss_is_measured(
    group: SentinelGroup,
    workers: Callable[..., WorkerProcess],
    point_here: Callable[[dict[str, str]], Settings],
    tmp_path: Path,
) -> None:
    outcome, failovers = run_failovers(group, workers, point_here, tmp_path, replicas_ack=0)
    report("REDIS_MIN_REPLICAS_ACK=0", outcome, failovers)
    assert len(outcome.accepted) == JOBS
    assert len(set(outcome.runs) & outcome.accepted) + len(outcome.lost) == JOBS
    assert "BrokerNotReplicatedError" not in outcome.errors
    assert_recovered(failovers)

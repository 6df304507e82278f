"""Beat: the periodic jobs run, and two beat processes never fire one twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import redis

from csgoflip_jobs import SessionService
from csgoflip_jobs.keys import STATS_SNAPSHOTS_KEY, user_sessions_key
from tests.support.child_processes import spawn_logged
from tests.support.workers import WorkerProcess


def start_beat(log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return spawn_logged(
        [sys.executable, "-m", "celery", "-A", "csgoflip_jobs", "beat", "-l", "info"], log, env
    )


def test_two_beats_fire_each_period_once(
    tmp_path: Path, workers: Callable[..., WorkerProcess], redis_client: redis.Redis
) -> None:
    env = {"STATS_SNAPSHOT_INTERVAL_S": "1"}
    workers(queues="notification", env=env)
    beats = [start_beat(tmp_path / f"beat{n}.log", env) for n in range(2)]
    try:
        time.sleep(8)
    finally:
        for beat in beats:
            os.killpg(beat.pid, signal.SIGKILL)
            beat.wait()
    snapshots = redis_client.llen(STATS_SNAPSHOTS_KEY)
    # One beat holds the lock: about one snapshot a second, not two.
    assert 3 <= snapshots <= 9, snapshots
    logs = [(tmp_path / f"beat{n}.log").read_text() for n in range(2)]
    senders = [log.count("Sending due task snapshot-redis-stats") for log in logs]
    assert sorted(senders)[0] == 0 and sorted(senders)[1] >= 3, senders


def test_pruning_every_user_session_set(redis_client: redis.Redis) -> None:
    short, long = SessionService(redis_client, ttl_s=1), SessionService(redis_client, ttl_s=100)
    for user in (1, 2, 3):
        short.create(user)
        long.create(user)
    time.sleep(1.2)
    assert SessionService(redis_client).prune_all_user_sessions() == 3
    assert all(redis_client.scard(user_sessions_key(u)) == 1 for u in (1, 2, 3))

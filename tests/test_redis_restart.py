"""A Redis restart in the middle of a 2,000-job run: workers reconnect by themselves and
every job completes exactly once.

What this run exercises: messages are taken and recorded as unacked in one step
(no message lives only in a worker's memory); a job running while the connection
drops is not handed to another worker; its ack still lands after the reconnect; and
a redelivered message whose job already finished (its record possibly trimmed by
retention) does not run again. Held messages that could not be put back during the
outage come back through the visibility sweep, so a run takes up to
VISIBILITY_TIMEOUT_S longer.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable

import pytest
import redis

from csgoflip_jobs.helpers.connection import as_text
from tests.support.jobs import RUNS_KEY
from tests.support.polling import wait_until
from tests.support.redis_servers import start_redis
from tests.support.workers import WorkerProcess, enqueue_elsewhere

pytestmark = [pytest.mark.slow, pytest.mark.fault]
JOBS = 2000


def enqueue(url: str, count: int) -> None:
    enqueue_elsewhere(
        {"REDIS_URL": url},
        "q = JobQueue('notification')\n"
        f"[q.add_bulk([{{'name': 'test-record', 'data': {{'n': n}}}} "
        f"for n in range(s, min({count}, s + 500))]) for s in range(0, {count}, 500)]",
    )


def test_jobs_complete_exactly_once_across_a_redis_restart(
    workers: Callable[..., WorkerProcess], redis_client: redis.Redis
) -> None:
    server = start_redis("--appendonly", "yes", "--appendfsync", "everysec")
    try:
        client = redis.Redis.from_url(server.url)
        enqueue(server.url, JOBS)
        env = {"REDIS_URL": server.url}
        pool = [workers(name=f"r{n}", env=env) for n in range(2)]
        wait_until(lambda: client.llen(RUNS_KEY) >= JOBS // 4, 60)
        client.shutdown()  # a clean restart: the append-only file is complete
        server.process.wait(timeout=30)
        time.sleep(1.0)  # the workers see the outage
        server = start_redis(
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            port=server.port,
            directory=server.directory,
        )
        client = redis.Redis.from_url(server.url)

        def all_ran() -> bool:
            ids = {json.loads(r)["data"]["n"] for r in client.lrange(RUNS_KEY, 0, -1)}
            return len(ids) == JOBS

        try:
            wait_until(all_ran, 60, interval=0.5)
        except AssertionError:
            ran = {json.loads(r)["data"]["n"] for r in client.lrange(RUNS_KEY, 0, -1)}
            missing = sorted(set(range(JOBS)) - ran)
            states = {}
            for key in client.scan_iter(match="csgoflip:job:*", count=1000):
                record = client.hgetall(key)
                if json.loads(record.get(b"data", b"{}")).get("n") in missing[:5]:
                    states[as_text(key)] = {as_text(k): as_text(v)[:80] for k, v in record.items()}
            counts = {as_text(k): client.llen(k) for k in client.scan_iter(match="notification*")}
            raise AssertionError(
                f"missing {len(missing)}: {missing[:10]}; records {states}; "
                f"lists {counts}; unacked {client.hlen('unacked')}"
            ) from None
        time.sleep(2)  # any duplicate would show up now
        records = [json.loads(r) for r in client.lrange(RUNS_KEY, 0, -1)]
        runs = Counter(r["data"]["n"] for r in records)
        assert set(runs) == set(range(JOBS))
        twice = [r for r in records if runs[r["data"]["n"]] > 1]
        assert twice == [], f"jobs run more than once: {twice}"
        assert all(w.process.poll() is None for w in pool)  # reconnected, not dead
    finally:
        server.stop()

"""Tasks for the benchmarks, loaded by workers with ``-I benchmarks.tasks``."""

from __future__ import annotations

import time

from csgoflip_jobs import app
from csgoflip_jobs.helpers.connection import broker_client

DONE_KEY = "bench:done"
STARTS_KEY = "bench:starts"


@app.task(name="bench-noop")
def noop(n: int = 0) -> int:
    """Count one finished job."""
    broker_client().incr(DONE_KEY)
    return n


@app.task(name="bench-latency")
def latency(sent_at: float) -> None:
    """Record how long after ``sent_at`` (Unix seconds) this job started."""
    broker_client().rpush(STARTS_KEY, time.time() - sent_at)

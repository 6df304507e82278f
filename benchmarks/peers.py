"""bullmq-python beside the platform in the same run, on the same private Redis.

Given ``PEERS_PYTHON`` (an interpreter with bullmq installed, e.g. the venv of
../shared/peers/README.md), :func:`bullmq` enqueues N jobs with single adds, then times
WORKERS worker processes of bullmq's (concurrency 10, as the peers harness runs them)
draining them, as :func:`benchmarks.throughput_bench.wait_done` times the platform,
and measures Redis's cost per job the same way (:mod:`benchmarks.redis_costs`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import redis

from benchmarks.redis_costs import cpu_seconds, top_level_commands

PEERS_PYTHON = os.environ.get("PEERS_PYTHON", "")
RUNNER = Path(__file__).resolve().parent / "peer_bullmq.py"
BULLMQ_WORKERS = 2
"""bullmq's worker processes: as many as the machine's cores, as in ../shared/peers."""


def bullmq(client: redis.Redis, url: str, count: int, platform_slots: int) -> dict[str, Any]:
    """bullmq-python's figures, keyed ``bullmq_*``."""
    rate, cpu, enqueue = _drain(client, url, count, bulk=True)
    sample = min(count, 1000)
    commands = top_level_commands(url, lambda: _drain(client, url, sample)).total()
    return {
        "bullmq_jobs_per_s": rate,
        "bullmq_enqueue_single_jobs_per_s": enqueue["enqueue_single_jobs_per_s"],
        "bullmq_enqueue_bulk_jobs_per_s": enqueue["enqueue_bulk_jobs_per_s"],
        "bullmq_redis_cpu_us_per_job": cpu,
        "bullmq_round_trips_per_job": round(commands / sample, 2),
        "bullmq_worker_processes": BULLMQ_WORKERS,
        "platform_worker_slots": platform_slots,
    }


def rows(results: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """The report's rows of the peers, with the platform's ratios to them."""
    if "bullmq_jobs_per_s" not in results:
        return []
    ratio = results["platform_jobs_per_s"] / results["bullmq_jobs_per_s"]
    add = results["enqueue_single_jobs_per_s"] / results["bullmq_enqueue_single_jobs_per_s"]
    bulk = results["enqueue_bulk_jobs_per_s"] / results["bullmq_enqueue_bulk_jobs_per_s"]
    cpu = results["redis_cpu_us_per_job"] / results["bullmq_redis_cpu_us_per_job"]
    results["ratio_platform_to_bullmq"] = round(ratio, 3)
    results["single_add_platform_to_bullmq"] = round(add, 3)
    results["add_bulk_platform_to_bullmq"] = round(bulk, 3)
    results["redis_cpu_platform_to_bullmq"] = round(cpu, 3)
    return [
        ("bullmq-python, jobs/s", results["bullmq_jobs_per_s"], "-"),
        ("platform / bullmq-python", results["ratio_platform_to_bullmq"], ">= 1.0"),
        ("bullmq single add, jobs/s", results["bullmq_enqueue_single_jobs_per_s"], "-"),
        ("single add platform / bullmq", results["single_add_platform_to_bullmq"], ">= 1.0"),
        ("bullmq addBulk, jobs/s", results["bullmq_enqueue_bulk_jobs_per_s"], "-"),
        ("add_bulk platform / bullmq", results["add_bulk_platform_to_bullmq"], "-"),
        ("round trips per job, bullmq", results["bullmq_round_trips_per_job"], "-"),
        ("Redis CPU us per job, bullmq", results["bullmq_redis_cpu_us_per_job"], "-"),
        ("Redis CPU platform / bullmq", results["redis_cpu_platform_to_bullmq"], "<= 1.0"),
    ]


def _drain(
    client: redis.Redis, url: str, count: int, bulk: bool = False
) -> tuple[float, float, dict[str, float]]:
    """Enqueue ``count`` jobs, then drain them: jobs/s, Redis CPU us per job, and the
    enqueue rates by name (single adds; with ``bulk``, addBulk too, into a queue no
    worker reads)."""
    from benchmarks.throughput_bench import wait_done

    client.flushdb()
    added = _run([PEERS_PYTHON, str(RUNNER), "enqueue", url, str(count), *(["bulk"] * bulk)])
    cpu_before = cpu_seconds(client)
    command = [PEERS_PYTHON, str(RUNNER), "worker", url]
    workers = [_start(command) for _ in range(BULLMQ_WORKERS)]
    try:
        elapsed = wait_done(client, count + 1)  # and the warm-up job
        cpu = (cpu_seconds(client) - cpu_before) * 1e6 / (count + 1)
    finally:
        for worker in workers:
            _stop(worker)
    return round((count + 1) / elapsed, 1), round(cpu, 1), added


def _run(command: list[str]) -> dict[str, Any]:
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=600)
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def _start(command: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _stop(worker: subprocess.Popen[bytes], grace_s: float = 10) -> None:
    os.killpg(worker.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while worker.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()

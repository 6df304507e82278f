"""Throughput, enqueue speed, latency, worker memory and Redis memory, in one run.

    .venv/bin/python -m benchmarks.throughput_bench            # N=10000
    N=2000 MEMORY_JOBS=20000 .venv/bin/python -m benchmarks.throughput_bench

Starts a private redis-server (noeviction, no persistence) on a free port, so
nothing else on the machine is touched, and real worker processes. Prints a
table, then one line of JSON.

* throughput: N no-op jobs through the platform's real path (JobQueue, job
  records, results with retention, late acks, events) and through bare Celery
  with the same guarantees, same pool and worker count; jobs/s from the first
  finished job to the last (worker start-up is not counted).
* enqueue: single ``add`` against ``add_bulk`` (batches of 1000).
* latency: enqueue to task start on an idle worker, p50 and p99.
* memory: peak RSS of a worker; Redis used memory after 1,000 and after
  MEMORY_JOBS completed jobs (retention keeps it flat).
* helpers: sessions, cache, rate limit and lock as ratios to one redis-py GET
  (:mod:`benchmarks.helpers_bench`, on the same private server).
* Redis's cost per processed job (:mod:`benchmarks.redis_costs`): its CPU time
  (``redis_cpu_us_per_job``) over the throughput runs, and the commands clients sent
  it (``round_trips_per_job``, enqueueing included; ``worker_round_trips_per_job``
  without the ENQUEUE calls) over a run of SAMPLE jobs watched with MONITOR.
* With ``PEERS_PYTHON=/path/to/python`` (a venv with bullmq, see ../shared/peers),
  bullmq-python on the same private Redis in the same run (:mod:`benchmarks.peers`),
  and the platform's ratios to it.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

from benchmarks import helpers_bench, peers
from benchmarks.redis_costs import cpu_seconds, top_level_commands

ROOT = Path(__file__).resolve().parent.parent
N = int(os.environ.get("N", "10000"))
MEMORY_JOBS = int(os.environ.get("MEMORY_JOBS", "100000"))
CONCURRENCY = int(os.environ.get("CONCURRENCY", "2"))
POOL = os.environ.get("POOL", "prefork")
WORKERS = int(os.environ.get("WORKERS", "1"))
"""Worker processes for the throughput runs (each with CONCURRENCY of POOL)."""
WORKER_ARGS = os.environ.get("WORKER_ARGS", "").split()
"""Extra ``celery worker`` options for both workers, e.g. ``--prefetch-multiplier 4``."""
LATENCY_SAMPLES = 200
SAMPLE = int(os.environ.get("SAMPLE", "1000"))
"""Jobs of the run whose commands are counted (MONITOR slows Redis: not the timed runs)."""


def main() -> None:
    from tests.support.redis_servers import start_redis

    server = start_redis("--maxmemory-policy", "noeviction")
    os.environ["REDIS_URL"] = server.url
    import benchmarks.tasks  # noqa: F401 - registers the benchmark tasks (after REDIS_URL)
    from csgoflip_jobs.engine import scripts

    client = redis.Redis.from_url(server.url)
    results: dict[str, Any] = {
        "n": N,
        "workers": WORKERS,
        "concurrency": CONCURRENCY,
        "pool": POOL,
        "worker_args": WORKER_ARGS,
    }
    try:
        bare_rate, bare_cpu = bare_celery_throughput(client, N)
        results["bare_celery_jobs_per_s"] = bare_rate
        platform_rate, worker_rss_kb, platform_cpu = platform_throughput(client, N)
        results["platform_jobs_per_s"] = platform_rate
        results["worker_peak_rss_mb"] = round(worker_rss_kb / 1024, 1)
        results["ratio_platform_to_bare"] = round(platform_rate / bare_rate, 3)
        results["redis_cpu_us_per_job"] = platform_cpu
        results["bare_celery_redis_cpu_us_per_job"] = bare_cpu
        commands = top_level_commands(server.url, lambda: platform_throughput(client, SAMPLE))
        results["round_trips_per_job"] = round(commands.total() / SAMPLE, 2)
        enqueues = commands[f"EVALSHA {scripts.ENQUEUE.sha}"]
        results["worker_round_trips_per_job"] = round((commands.total() - enqueues) / SAMPLE, 2)
        bare = top_level_commands(server.url, lambda: bare_celery_throughput(client, SAMPLE))
        results["bare_celery_round_trips_per_job"] = round(bare.total() / SAMPLE, 2)
        results.update(enqueue_rates(client))
        if peers.PEERS_PYTHON:
            results.update(peers.bullmq(client, server.url, N, WORKERS * CONCURRENCY))
        results.update(latency(client))
        results.update(redis_memory(client))
        client.flushdb()
        helper_seconds, helper_ratios = helpers_bench.measure(server.url)
    finally:
        server.stop()
    report(results)
    results["helpers"] = helpers_bench.report(helper_seconds, helper_ratios)["results"]
    print(json.dumps({"benchmark": "throughput", **results}))


def start_worker(app: str, queue: str, include: str | None = None) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        app,
        "worker",
        "-Q",
        queue,
        "-c",
        str(CONCURRENCY),
        "-P",
        POOL,
        "-l",
        "warning",
        "--without-gossip",
        "--without-mingle",
        *WORKER_ARGS,
    ]
    if include:
        command += ["-I", include]
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=dict(os.environ),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(worker: subprocess.Popen[bytes]) -> None:
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()


def wait_done(client: redis.Redis, count: int, timeout: float = 600) -> float:
    """Seconds from the first finished job until ``bench:done`` reaches ``count``
    (so worker start-up is not counted), as the peers harness measures."""
    deadline = time.perf_counter() + timeout
    first_done: float | None = None
    done_at_first = 0
    while True:
        done = int(client.get("bench:done") or 0)
        now = time.perf_counter()
        if first_done is None and done:
            first_done, done_at_first = now, done
        if done >= count:
            assert first_done is not None
            # Scale to the full count: the jobs done before the first poll took no time here.
            return (now - first_done) * count / max(1, count - done_at_first)
        if now > deadline:
            raise RuntimeError(f"only {done} of {count} jobs done")
        time.sleep(0.005)


def bare_celery_throughput(client: redis.Redis, count: int) -> tuple[float, float]:
    """Jobs/s of bare Celery, and Redis CPU microseconds per job while processing."""
    from benchmarks.bare_celery import noop

    client.flushdb()
    for n in range(count):
        noop.delay(n)
    cpu_before = cpu_seconds(client)
    workers = [start_worker("benchmarks.bare_celery", "bare") for _ in range(WORKERS)]
    try:
        elapsed = wait_done(client, count)
        cpu = (cpu_seconds(client) - cpu_before) * 1e6 / count
    finally:
        for worker in workers:
            stop(worker)
    return round(count / elapsed, 1), round(cpu, 1)


def platform_throughput(client: redis.Redis, count: int) -> tuple[float, int, float]:
    """Jobs/s of the platform, its worker's peak RSS in KB, and Redis CPU
    microseconds per job while processing."""
    from csgoflip_jobs import JobQueue

    client.flushdb()
    queue = JobQueue("notification", client=client)
    for start in range(0, count, 1000):
        queue.add_bulk(
            [
                {"name": "bench-noop", "data": {"n": n}}
                for n in range(start, min(count, start + 1000))
            ]
        )
    cpu_before = cpu_seconds(client)
    workers = [
        start_worker("csgoflip_jobs", "notification", "benchmarks.tasks") for _ in range(WORKERS)
    ]
    try:
        elapsed = wait_done(client, count)
        cpu = (cpu_seconds(client) - cpu_before) * 1e6 / count
        rss = max(peak_rss_kb(worker.pid) for worker in workers)
    finally:
        for worker in workers:
            stop(worker)
    return round(count / elapsed, 1), rss, round(cpu, 1)


def peak_rss_kb(pid: int) -> int:
    """Largest VmHWM among the worker's main process and its pool children."""
    pids = [
        pid,
        *map(
            int,
            subprocess.run(
                ["pgrep", "-P", str(pid)], capture_output=True, text=True
            ).stdout.split(),
        ),
    ]
    peaks = []
    for each in pids:
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]))
    return max(peaks)


def enqueue_rates(client: redis.Redis) -> dict[str, float]:
    from csgoflip_jobs import JobQueue

    client.flushdb()
    queue = JobQueue("email", client=client)
    queue.add("bench-noop", {"n": -1})  # declare and load scripts once
    count = min(N, 5000)
    started = time.perf_counter()
    for n in range(count):
        queue.add("bench-noop", {"n": n})
    single = count / (time.perf_counter() - started)
    started = time.perf_counter()
    for start in range(0, count, 1000):
        queue.add_bulk(
            [{"name": "bench-noop", "data": {"n": n}} for n in range(start, start + 1000)]
        )
    bulk = count / (time.perf_counter() - started)
    return {
        "enqueue_single_jobs_per_s": round(single, 1),
        "enqueue_bulk_jobs_per_s": round(bulk, 1),
        "bulk_to_single": round(bulk / single, 1),
    }


def latency(client: redis.Redis) -> dict[str, float]:
    from csgoflip_jobs import JobQueue

    client.flushdb()
    worker = start_worker("csgoflip_jobs", "payment", "benchmarks.tasks")
    queue = JobQueue("payment", client=client)
    try:
        queue.add("bench-latency", {"sent_at": time.time()})
        while client.llen("bench:starts") < 1:  # the worker is up and idle
            time.sleep(0.05)
        client.delete("bench:starts")
        for _ in range(LATENCY_SAMPLES):
            queue.add("bench-latency", {"sent_at": time.time()})
            time.sleep(0.02)  # idle between jobs
        while client.llen("bench:starts") < LATENCY_SAMPLES:
            time.sleep(0.05)
    finally:
        stop(worker)
    samples = sorted(float(x) * 1000 for x in client.lrange("bench:starts", 0, -1))
    return {
        "latency_p50_ms": round(statistics.median(samples), 2),
        "latency_p99_ms": round(samples[int(len(samples) * 0.99) - 1], 2),
    }


def redis_memory(client: redis.Redis) -> dict[str, float]:
    from csgoflip_jobs import JobQueue

    client.flushdb()
    queue = JobQueue("notification", client=client)
    worker = start_worker("csgoflip_jobs", "notification", "benchmarks.tasks")
    try:
        after_small = run_and_measure(client, queue, 1000, 0)
        # The events stream fills up to EVENTS_MAX_LEN (about 2,500 jobs' worth) and
        # then stays that size: from 10,000 jobs on, memory is flat.
        after_medium = run_and_measure(client, queue, 10_000, 1000)
        after_large = run_and_measure(client, queue, MEMORY_JOBS, 10_000)
    finally:
        stop(worker)
    return {
        "redis_used_memory_after_1000_bytes": after_small,
        "redis_used_memory_after_10000_bytes": after_medium,
        f"redis_used_memory_after_{MEMORY_JOBS}_bytes": after_large,
        "redis_memory_growth": round(after_large / after_small, 3),
        "redis_memory_growth_from_10000": round(after_large / after_medium, 3),
    }


def run_and_measure(client: redis.Redis, queue: Any, total: int, done_before: int) -> int:
    for start in range(done_before, total, 1000):
        queue.add_bulk(
            [
                {"name": "bench-noop", "data": {"n": n}}
                for n in range(start, min(total, start + 1000))
            ]
        )
    wait_done(client, total)
    time.sleep(0.5)
    client.execute_command("MEMORY", "PURGE")
    return int(client.info("memory")["used_memory"])


def report(results: dict[str, Any]) -> None:
    rows = [
        ("bare Celery, jobs/s", results["bare_celery_jobs_per_s"], "-"),
        ("platform, jobs/s", results["platform_jobs_per_s"], "-"),
        ("platform / bare", results["ratio_platform_to_bare"], ">= 1.5"),
        ("round trips per job, platform", results["round_trips_per_job"], "<= 3"),
        ("  of which processing (no enqueue)", results["worker_round_trips_per_job"], "-"),
        ("round trips per job, bare", results["bare_celery_round_trips_per_job"], "-"),
        ("Redis CPU us per job, platform", results["redis_cpu_us_per_job"], "<= bullmq"),
        ("Redis CPU us per job, bare", results["bare_celery_redis_cpu_us_per_job"], "-"),
        ("enqueue single add, jobs/s", results["enqueue_single_jobs_per_s"], ">= bullmq"),
        ("enqueue add_bulk, jobs/s", results["enqueue_bulk_jobs_per_s"], ">= 50000"),
        ("add_bulk / add", results["bulk_to_single"], "-"),
        ("latency p50, ms", results["latency_p50_ms"], "<= 2"),
        ("latency p99, ms", results["latency_p99_ms"], "<= 5"),
        ("worker peak RSS, MB", results["worker_peak_rss_mb"], "-"),
        (f"Redis memory {MEMORY_JOBS} / 1000 jobs", results["redis_memory_growth"], "<= 1.10"),
        (f"Redis memory {MEMORY_JOBS} / 10000 jobs", results["redis_memory_growth_from_10000"],
         "<= 1.10"),
    ]  # fmt: skip
    rows += peers.rows(results)
    print(f"N={N}, {WORKERS} worker(s) of {CONCURRENCY} x {POOL} {' '.join(WORKER_ARGS)}")
    for name, value, target in rows:
        print(f"{name:<36}{value:>12}   target {target}")
    print()


if __name__ == "__main__":
    main()

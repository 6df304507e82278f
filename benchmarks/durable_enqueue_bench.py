"""What durable enqueue (REDIS_MIN_REPLICAS_ACK=1: WAIT for one replica) costs an add.

    .venv/bin/python -m benchmarks.durable_enqueue_bench         # ROUNDS=7 SINGLE=1000 BULK=5000

Starts a private master and one replica (redis-server on free ports of 127.0.0.1, no
persistence), then times, in alternating rounds on the same master, single ``add``
calls and ``add_bulk`` batches of 1000 with REDIS_MIN_REPLICAS_ACK 0 and 1 (which
goes first alternates). Prints the median of the rounds as a table, then one line of
JSON; a cost below the rounds' spread reads as "within noise". The replica is on the same
machine (loopback): a replica across a network adds its round-trip time to every add.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from typing import Any

ROUNDS = int(os.environ.get("ROUNDS", "7"))
SINGLE = int(os.environ.get("SINGLE", "1000"))
BULK = int(os.environ.get("BULK", "5000"))
BATCH = 1000


def main() -> None:
    from tests.support.polling import wait_until
    from tests.support.redis_servers import start_redis

    master = start_redis("--maxmemory-policy", "noeviction")
    replica = start_redis("--replicaof", "127.0.0.1", str(master.port))
    os.environ["REDIS_URL"] = master.url
    os.environ["REDIS_REPLICA_ACK_TIMEOUT_MS"] = "1000"
    import redis

    import benchmarks.tasks  # noqa: F401 - registers the benchmark tasks (after REDIS_URL)

    try:
        link = redis.Redis(port=replica.port)
        wait_until(lambda: link.info("replication")["master_link_status"] == "up", 20)
        results = measure(redis.Redis.from_url(master.url))
    finally:
        replica.stop()
        master.stop()
    report(results)
    print(json.dumps({"benchmark": "durable_enqueue", **results}))


def measure(client: Any) -> dict[str, Any]:
    from csgoflip_jobs import JobQueue

    queue = JobQueue("email", client=client)
    rates: dict[tuple[str, int], list[float]] = {}
    for round_ in range(ROUNDS):
        for acks in (0, 1) if round_ % 2 == 0 else (1, 0):  # neither always goes first
            durable(acks)
            client.flushdb()
            queue.add("bench-noop", {"n": -1})  # scripts loaded, connection open
            rates.setdefault(("single", acks), []).append(single_rate(queue))
            rates.setdefault(("bulk", acks), []).append(bulk_rate(queue))
    medians = {
        f"{kind}_acks_{acks}_jobs_per_s": round(statistics.median(v), 1)
        for (kind, acks), v in rates.items()
    }
    for kind in ("single", "bulk"):
        off, on = medians[f"{kind}_acks_0_jobs_per_s"], medians[f"{kind}_acks_1_jobs_per_s"]
        medians[f"{kind}_cost_per_call_us"] = round(
            (1 / on - 1 / off) * 1e6 * (1 if kind == "single" else BATCH), 1
        )
        medians[f"{kind}_durable_to_plain"] = round(on / off, 3)
    return {"rounds": ROUNDS, "single_adds": SINGLE, "bulk_jobs": BULK, **medians}


def durable(acks: int) -> None:
    """Set REDIS_MIN_REPLICAS_ACK for the next adds (JobQueue reads it at every add)."""
    from csgoflip_jobs.settings import get_settings

    os.environ["REDIS_MIN_REPLICAS_ACK"] = str(acks)
    get_settings.cache_clear()


def single_rate(queue: Any) -> float:
    started = time.perf_counter()
    for n in range(SINGLE):
        queue.add("bench-noop", {"n": n})
    return SINGLE / (time.perf_counter() - started)


def bulk_rate(queue: Any) -> float:
    started = time.perf_counter()
    for start in range(0, BULK, BATCH):
        queue.add_bulk(
            [{"name": "bench-noop", "data": {"n": n}} for n in range(start, start + BATCH)]
        )
    return BULK / (time.perf_counter() - started)


def report(results: dict[str, Any]) -> None:
    rows = [
        ("add, jobs/s (acks 0)", results["single_acks_0_jobs_per_s"]),
        ("add, jobs/s (acks 1)", results["single_acks_1_jobs_per_s"]),
        ("add: durable / plain", results["single_durable_to_plain"]),
        ("add: WAIT cost per call, us", results["single_cost_per_call_us"]),
        ("add_bulk, jobs/s (acks 0)", results["bulk_acks_0_jobs_per_s"]),
        ("add_bulk, jobs/s (acks 1)", results["bulk_acks_1_jobs_per_s"]),
        ("add_bulk: durable / plain", results["bulk_durable_to_plain"]),
        (f"add_bulk: WAIT cost per {BATCH}-job call, us", results["bulk_cost_per_call_us"]),
    ]
    print(f"median of {ROUNDS} rounds; {SINGLE} single adds, {BULK} jobs in batches of {BATCH}")
    for name, value in rows:
        print(f"{name:<40}{value:>12}")
    print()


if __name__ == "__main__":
    main()

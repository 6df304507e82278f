"""What Celery's publish signals and OpenTelemetry cost a single ``add``.

    .venv/bin/python -m benchmarks.publish_hooks_bench        # ROUNDS=7 SINGLE=1000

On a private redis-server (a free port of 127.0.0.1, no persistence), times single
``add`` calls in alternating rounds, three ways: the plain path (nothing listens to
``before_task_publish`` / ``after_task_publish``: stamped from a template), with one
no-op receiver (each job then goes through Celery's ``send_task``, its signals fired
per job), and with OpenTelemetry's Celery instrumentation on (a tracer provider whose
spans go to an in-memory exporter: the SDK's work, not an exporter's I/O). Prints the
median of the rounds, each way's cost per add beside the plain path, then one JSON line.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

ROUNDS = int(os.environ.get("ROUNDS", "7"))
SINGLE = int(os.environ.get("SINGLE", "1000"))
WAYS = ("plain", "receiver", "otel")


def main() -> None:
    from tests.support.redis_servers import start_redis

    server = start_redis("--maxmemory-policy", "noeviction")
    os.environ["REDIS_URL"] = server.url
    import redis

    import benchmarks.tasks  # noqa: F401 - registers the benchmark tasks (after REDIS_URL)

    try:
        results = measure(redis.Redis.from_url(server.url))
    finally:
        server.stop()
    report(results)
    print(json.dumps({"benchmark": "publish_hooks", **results}))


def measure(client: Any) -> dict[str, Any]:
    from csgoflip_jobs import JobQueue

    queue = JobQueue("email", client=client)
    rates: dict[str, list[float]] = {way: [] for way in WAYS}
    for round_ in range(ROUNDS):
        ways = WAYS if round_ % 2 == 0 else WAYS[::-1]  # none always goes first
        for way in ways:
            client.flushdb()
            with hooked(way):
                queue.add("bench-noop", {"n": -1})  # scripts loaded, connection open
                rates[way].append(single_rate(queue))
    medians = {f"{way}_jobs_per_s": round(statistics.median(r), 1) for way, r in rates.items()}
    plain = medians["plain_jobs_per_s"]
    for way in WAYS[1:]:
        medians[f"{way}_cost_per_add_us"] = round(
            (1 / medians[f"{way}_jobs_per_s"] - 1 / plain) * 1e6, 1
        )
        medians[f"{way}_to_plain"] = round(medians[f"{way}_jobs_per_s"] / plain, 3)
    return {"rounds": ROUNDS, "single_adds": SINGLE, **medians}


class hooked:
    """Within the block, the publish path is hooked as ``way`` says."""

    def __init__(self, way: str) -> None:
        self.way = way
        self._undo: Callable[[], None] = lambda: None

    def __enter__(self) -> None:
        if self.way == "receiver":
            from celery import signals

            def noop(**_: Any) -> None:
                pass

            signals.before_task_publish.connect(noop, weak=False)
            self._undo = lambda: signals.before_task_publish.disconnect(noop)
        elif self.way == "otel":
            from csgoflip_jobs.engine import tracing

            _provider()
            tracing.instrument()
            self._undo = tracing.uninstrument

    def __exit__(self, *_: Any) -> None:
        self._undo()


_PROVIDER: list[Any] = []


def _provider() -> None:
    """A tracer provider keeping spans in memory, set once for the process."""
    if _PROVIDER:
        _PROVIDER[0].clear()
        return
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _PROVIDER.append(exporter)


def single_rate(queue: Any) -> float:
    started = time.perf_counter()
    for n in range(SINGLE):
        queue.add("bench-noop", {"n": n})
    return SINGLE / (time.perf_counter() - started)


def report(results: dict[str, Any]) -> None:
    print(f"median of {ROUNDS} rounds of {SINGLE} single adds")
    rows = [
        ("add, plain path, jobs/s", results["plain_jobs_per_s"]),
        ("add, a publish receiver, jobs/s", results["receiver_jobs_per_s"]),
        ("add, OpenTelemetry on, jobs/s", results["otel_jobs_per_s"]),
        ("receiver: cost per add, us", results["receiver_cost_per_add_us"]),
        ("OpenTelemetry: cost per add, us", results["otel_cost_per_add_us"]),
        ("receiver / plain", results["receiver_to_plain"]),
        ("OpenTelemetry / plain", results["otel_to_plain"]),
    ]
    for name, value in rows:
        print(f"{name:<40}{value:>12}")
    print()


if __name__ == "__main__":
    main()

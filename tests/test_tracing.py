"""One OpenTelemetry trace from a web request through its jobs to their tries, with real
workers exporting over OTLP/HTTP: a producer span per job (child of the request's), each
try a child of the span that sent it, across a delay, a retry with backoff and a
``defer``; two requests' jobs never share a trace."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from csgoflip_jobs import JobQueue, aio
from csgoflip_jobs.engine import tracing
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan, otlp_receiver
from tests.support.polling import wait_for_state, wait_until
from tests.support.webapp import running_webapp
from tests.support.workers import WorkerProcess

pytestmark = pytest.mark.timeout(120)


@cache
def local_spans() -> InMemorySpanExporter:
    """This process's tracer provider (set once per process), keeping spans in memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter


@pytest.fixture
def traced(redis_client: redis.Redis) -> Iterator[InMemorySpanExporter]:
    exporter = local_spans()
    exporter.clear()
    tracing.instrument()
    try:
        yield exporter
    finally:
        tracing.uninstrument()  # the other tests' adds take the plain path again


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as server:
        yield server


def traced_worker(
    workers: Callable[..., WorkerProcess],
    receiver: OtlpReceiver,
    extra: dict[str, str] | None = None,
    **kwargs: Any,
) -> WorkerProcess:
    """A real worker exporting its spans to ``receiver`` (OTLP/HTTP, every 100 ms)."""
    env = {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_SERVICE_NAME": "csgoflip-worker",
        **(extra or {}),
    }
    return workers(env=env, **kwargs)


def producer(spans: Sequence[ReadableSpan], job_id: str) -> ReadableSpan:
    found = [s for s in spans if s.kind == trace.SpanKind.PRODUCER
             and (s.attributes or {}).get("job.id") == job_id]  # fmt: skip
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


def runs(spans: list[ReceivedSpan], job_id: str) -> list[ReceivedSpan]:
    """The job's tries (their run spans), in order."""
    tries = [s for s in spans if s.name.startswith("run/") and s.attributes.get("job.id") == job_id]
    return sorted(tries, key=lambda s: int(s.attributes.get("job.attempt", 0)))


def hex_ids(span: ReadableSpan) -> tuple[str, str]:
    context = span.get_span_context()
    assert context is not None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def test_a_request_its_jobs_and_their_tries_are_one_trace(
    traced: InMemorySpanExporter,
    receiver: OtlpReceiver,
    workers: Callable[..., WorkerProcess],
) -> None:
    tracer = trace.get_tracer("the web app")
    queue = JobQueue("email")
    with tracer.start_as_current_span("POST /api/withdrawals") as request_a:
        delayed = queue.add("test-record", {"n": 1}, delay=300)
        retried = queue.add("test-flaky", {"succeed_on": 2}, backoff=200)
    with tracer.start_as_current_span("POST /api/deposits") as request_b:
        deferred = queue.add("test-defer-once", {"delay_ms": 200})

        async def add_async() -> str:
            try:
                return await aio.JobQueue("email").add("test-record", {"n": 4})
            finally:
                await aio.close()

        from_async = asyncio.run(add_async())
    traced_worker(workers, receiver, queues="email", pool="solo", concurrency=1)
    for job_id in (delayed, retried, deferred, from_async):
        wait_for_state(queue, job_id, "completed", 30)
    local = traced.get_finished_spans()
    expected_runs = {delayed: 1, retried: 2, deferred: 2, from_async: 1}
    wait_until(lambda: all(len(runs(receiver.received(), j)) == n
                           for j, n in expected_runs.items()), 15)  # fmt: skip
    received = receiver.received()
    trace_a, trace_b = (f"{r.get_span_context().trace_id:032x}" for r in (request_a, request_b))
    assert trace_a != trace_b
    cases = [(delayed, request_a, trace_a), (retried, request_a, trace_a),
             (deferred, request_b, trace_b), (from_async, request_b, trace_b)]  # fmt: skip
    for job_id, request, trace_id in cases:
        sent = producer(local, job_id)
        assert sent.parent is not None and sent.parent.span_id == request.get_span_context().span_id
        assert hex_ids(sent)[0] == trace_id
        assert sent.attributes["job.queue"] == "email"  # type: ignore[index]
        tries = runs(received, job_id)
        assert tries[0].parent_id == hex_ids(sent)[1], job_id  # the first try: the add's child
        assert all(t.trace_id == trace_id and t.service == "csgoflip-worker" for t in tries)
        assert "job.completed" in tries[-1].events
    # The retry: the first try scheduled it, and its message was sent from within it.
    first, second = runs(received, retried)
    assert "job.retry_scheduled" in first.events
    resend = next(
        s for s in received if s.parent_id == first.span_id and s.name.startswith("apply_async/")
    )
    assert second.parent_id == resend.span_id
    first, second = runs(received, deferred)
    assert "job.deferred" in first.events
    resend = next(
        s for s in received if s.parent_id == first.span_id and s.name.startswith("apply_async/")
    )
    assert second.parent_id == resend.span_id


def test_a_delayed_add_in_an_unsampled_trace_logs_no_error(
    traced: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    """Tagging the delay on the producer span, which an unsampled trace does not record,
    raised inside Celery's publish signal: an error and a traceback per delayed add."""
    unsampled = SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(0))
    queue = JobQueue("email")
    with caplog.at_level(logging.WARNING), trace.use_span(NonRecordingSpan(unsampled)):
        job_id = queue.add("test-record", {"n": 1}, delay=60_000)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    job = queue.get_job(job_id)
    assert job is not None and job.state == "delayed"
    assert traced.get_finished_spans() == ()
    with trace.get_tracer("the web app").start_as_current_span("POST /api/withdrawals"):
        sampled = queue.add("test-record", {"n": 2}, delay=60_000)
    attributes = producer(traced.get_finished_spans(), sampled).attributes or {}
    assert {k: v for k, v in attributes.items() if k.startswith("job.")} == {
        "job.id": sampled,
        "job.queue": "email",
        "job.name": "test-record",
        "job.attempt": 1,
        "job.delay_ms": 60_000,
    }


def test_a_stalled_jobs_next_try_is_in_the_same_trace(
    traced: InMemorySpanExporter,
    receiver: OtlpReceiver,
    workers: Callable[..., WorkerProcess],
) -> None:
    """The try that kills its worker's process exports nothing; the next delivery (the
    visibility sweep's) is a child of the same producer span, and says it stalled out."""
    queue = JobQueue("notification")
    with trace.get_tracer("the web app").start_as_current_span("POST /api/cases/open"):
        job_id = queue.add("test-crash", {"n": 1})
    extra = {"VISIBILITY_TIMEOUT_S": "5", "MAX_STALLED_COUNT": "0"}
    traced_worker(workers, receiver, extra, queues="notification", concurrency=1)
    job = wait_for_state(queue, job_id, "failed", 40)
    assert job.stalled == 1
    wait_until(lambda: runs(receiver.received(), job_id), 15)
    (stalled_out,) = runs(receiver.received(), job_id)
    sent = producer(traced.get_finished_spans(), job_id)
    assert (stalled_out.trace_id, stalled_out.parent_id) == hex_ids(sent)
    assert "job.stalled_out" in stalled_out.events and "job.failed" in stalled_out.events


def test_a_deposit_from_the_example_app_is_one_trace_to_the_worker(
    tmp_path: Path, redis_client: redis.Redis, workers: Callable[..., WorkerProcess]
) -> None:
    """The web request's span -> the job's producer span -> the try's run span, across
    three processes (the app, the worker), exported over OTLP."""
    with otlp_receiver() as receiver:
        env = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_BSP_SCHEDULE_DELAY": "100",
               "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.endpoint}  # fmt: skip
        with running_webapp(tmp_path, workers, env) as url, httpx.Client(base_url=url) as client:
            client.post("/api/sign-up", json={"name": "tracy", "password": "correct horse"})
            deposit = client.post("/api/deposits", json={"amount": 500}).json()["deposit_id"]
            job_id = f"deposit:{deposit}"
            wait_until(lambda: client.get("/api/me").json()["balance"] == 500, 20)

            def whole_trace() -> list[ReceivedSpan]:
                """The spans once the run, its producer and the request are all in."""
                spans = receiver.received()
                ids = {s.span_id: s for s in spans}
                tries = runs(spans, job_id)
                sent = ids.get(tries[0].parent_id) if tries else None
                return spans if sent is not None and sent.parent_id in ids else []

            spans = wait_until(whole_trace, 15)
    (run,) = runs(spans, job_id)
    by_id = {s.span_id: s for s in spans}
    sent = by_id[run.parent_id]
    request = by_id[sent.parent_id]
    assert sent.name == "apply_async/process-deposit" and sent.attributes["job.id"] == job_id
    assert request.attributes.get("http.route") == "/api/deposits" or "deposits" in request.name
    assert run.trace_id == sent.trace_id == request.trace_id
    assert "job.completed" in run.events

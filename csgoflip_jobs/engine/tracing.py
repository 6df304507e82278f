"""OpenTelemetry for the platform: off unless the standard OTEL_* variables ask for it.

With OTEL_TRACES_EXPORTER (``otlp`` or ``console``) or an OTLP endpoint set, and the
``otel`` extra installed (``pip install 'csgoflip-jobs[otel]'``), :func:`start` gives
the process a tracer provider exporting as OTEL_* says and instruments Celery: each
job's publish is a producer span (child of whatever span is current: the web
request's), each try a consumer span child of it, in the same trace across a delay, a
retry, a ``defer``, a stalled job's next try or a failover (the trace context travels
in the job's message). Spans carry the job's id, queue, name and try; the platform's
own state changes are span events (``job.retry_scheduled``, ``job.deferred``,
``job.stalled_out``, ``job.completed``, ``job.failed``). Without OpenTelemetry the
calls here do nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from csgoflip_jobs.engine.enqueue import JOB_HEADER, job_id_of
from csgoflip_jobs.errors import ConfigError
from csgoflip_jobs.settings import get_settings

DEFAULT_SERVICE = "csgoflip-jobs"

log = logging.getLogger(__name__)

_instrumented = False
_started = False


def start(service: str = DEFAULT_SERVICE) -> bool:
    """Trace this process when the settings ask for it (once; True when on): a tracer
    provider with the exporter OTEL_TRACES_EXPORTER names, and Celery instrumented.
    ConfigError when tracing is asked for but the ``otel`` extra is not installed."""
    global _started
    settings = get_settings()
    if not settings.tracing:
        return False
    if _started:
        return True
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError:
        raise ConfigError(
            "OTEL_TRACES_EXPORTER / OTEL_EXPORTER_OTLP_ENDPOINT ask for traces, but "
            "OpenTelemetry is not installed: pip install 'csgoflip-jobs[otel]'"
        ) from None
    resource = Resource.create({SERVICE_NAME: settings.otel_service_name or service})
    provider = TracerProvider(resource=resource)
    if (settings.otel_traces_exporter or "").strip().lower() == "console":
        exporter: Any = ConsoleSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()  # reads OTEL_EXPORTER_OTLP_* itself
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    instrument()
    _started = True
    return True


def instrument() -> None:
    """Instrument Celery (its publish and run spans) and tag producer spans with the
    job (idempotent; a process with its own tracer provider calls only this)."""
    global _instrumented
    if _instrumented:
        return
    from celery import signals
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    CeleryInstrumentor().instrument()  # type: ignore[no-untyped-call]
    # After the instrumentation's receiver: its producer span is the current one.
    signals.before_task_publish.connect(_tag_producer_span, weak=False)
    _instrumented = True


def uninstrument() -> None:
    """Undo :func:`instrument` (tests)."""
    global _instrumented
    if not _instrumented:
        return
    from celery import signals
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    signals.before_task_publish.disconnect(_tag_producer_span)
    CeleryInstrumentor().uninstrument()  # type: ignore[no-untyped-call]
    _instrumented = False


def _tag_producer_span(sender: str, headers: dict[str, Any], routing_key: str, **_: Any) -> None:
    header = headers.get(JOB_HEADER) or {}
    attempt, delay_ms = int(header.get("attempt", 1)), int(header.get("delay") or 0)
    tag_current_span(job_id_of(headers), routing_key, sender, attempt, delay_ms)


def tag_current_span(job_id: str, queue: str, name: str, attempt: int, delay_ms: int = 0) -> None:
    """Name the job on the current span, with its delay when it has one (a no-op
    without OpenTelemetry or a recording span: an unsampled trace's is not)."""
    span = _current_span()
    if span is None:
        return
    attributes = {"job.id": job_id, "job.queue": queue, "job.name": name, "job.attempt": attempt}
    if delay_ms:
        attributes["job.delay_ms"] = delay_ms
    span.set_attributes(attributes)


def span_event(name: str, **attributes: str | int) -> None:
    """Record a state change of the job as an event of the current span (a no-op
    without OpenTelemetry or a span)."""
    span = _current_span()
    if span is not None:
        span.add_event(name, attributes)


def current_trace_id() -> str | None:
    """The current span's trace id (hex), for log lines; None without one."""
    span = _current_span()
    context = span.get_span_context() if span is not None else None
    return f"{context.trace_id:032x}" if context is not None and context.is_valid else None


def _current_span() -> Any:
    if not (_instrumented or _started):
        return None
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    span = trace.get_current_span()
    return span if span.is_recording() else None

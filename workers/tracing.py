"""OpenTelemetry tracing of job runs: off unless the standard ``OTEL_*`` variables ask for it.

On, each run of a job is a CONSUMER span (messaging semantic conventions: system, operation,
destination = the queue, message id = the job id, plus the try), a child of the context the
producer put in the job document and linked to it, so a backend's request and the job it caused
are one trace; every retry and every recovery is a run of its own. SQL (SQLAlchemy, both databases)
and Redis calls made during the run are child spans, from the maintained instrumentations.

Off, nothing is imported or wrapped: the runner skips the span altogether.

The sampler keeps the job runs and what happens inside them, and drops root spans of anything else
(the worker's queue polls, heartbeats and finish transactions would otherwise be a trace each).
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from jobfleet import wire
from jobfleet.settings import Settings

# Set by configure(): None means tracing is off.
_tracer: Any = None
_provider_in_use: Any = None


def enabled() -> bool:
    return _tracer is not None


def configure(
    settings: Settings, engines: Sequence[AsyncEngine], *, exporter: Any = None, provider: Any = None
) -> bool:
    """Turn tracing on for this process if the settings ask for it (or a test hands an exporter or
    a provider). Idempotent: the instrumentations wrap once per process."""
    global _tracer, _provider_in_use
    if _tracer is not None:
        return True
    if exporter is None and provider is None and not settings.tracing_enabled:
        return False
    from opentelemetry import trace
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    if provider is None:
        provider = _provider(settings, exporter)
        trace.set_tracer_provider(provider)
    # The instrumentation declares SQLAlchemy < 2.1; its event hooks work on 2.1 (the tracing test
    # asserts the SQL spans), so the version check is skipped rather than pinning SQLAlchemy back.
    SQLAlchemyInstrumentor().instrument(
        engines=[e.sync_engine for e in engines], tracer_provider=provider, skip_dep_check=True
    )
    RedisInstrumentor().instrument(tracer_provider=provider)
    _tracer = provider.get_tracer("jobfleet.worker")
    _provider_in_use = provider
    return True


def shutdown() -> None:
    """Export what is pending and unwrap the instrumentations (a worker process stopping)."""
    global _tracer, _provider_in_use
    if _tracer is None:
        return
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    _provider_in_use.force_flush()
    SQLAlchemyInstrumentor().uninstrument()
    RedisInstrumentor().uninstrument()
    _tracer = _provider_in_use = None


def _provider(settings: Settings, exporter: Any) -> Any:
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    from opentelemetry.sdk.trace.sampling import ParentBased

    if exporter is None:
        if settings.otel_traces_exporter == "console":
            exporter = ConsoleSpanExporter()
        else:  # the OTLP exporter reads its endpoint, headers and timeout from OTEL_EXPORTER_OTLP_*
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: settings.otel_service_name or "jobfleet"}),
        sampler=ParentBased(root=JobRunsOnly()),
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


class JobRunsOnly:
    """Root sampler: a trace starts at a request, an enqueue or a job run, never at a background
    call of the worker's own."""

    def should_sample(self, parent_context: Any, trace_id: int, name: str, kind: Any = None, **_: Any) -> Any:
        from opentelemetry.sdk.trace.sampling import Decision, SamplingResult
        from opentelemetry.trace import SpanKind

        keep = kind in (SpanKind.SERVER, SpanKind.CONSUMER, SpanKind.PRODUCER)
        return SamplingResult(Decision.RECORD_AND_SAMPLE if keep else Decision.DROP)

    def get_description(self) -> str:
        return "JobRunsOnly"


@contextmanager
def job_run(job: str, job_id: str, job_try: int, queue: str) -> Iterator[None]:
    """The CONSUMER span of one run, in the context the job's producer left in its document."""
    if _tracer is None:
        yield
        return
    from opentelemetry import propagate, trace
    from opentelemetry.trace import Link, SpanKind

    carrier = wire.JOB_TRACE_CONTEXT.get() or {}
    producer = propagate.extract(carrier)
    producer_span = trace.get_current_span(producer).get_span_context()
    destination = queue.rsplit(":", 1)[-1]
    attributes = {
        "messaging.system": "jobfleet",
        "messaging.operation.name": "process",
        "messaging.operation.type": "process",
        "messaging.destination.name": destination,
        "messaging.message.id": job_id,
        "jobfleet.job.name": job,
        "jobfleet.job.try": job_try,
    }
    with _tracer.start_as_current_span(
        f"process {destination}",
        context=producer,
        kind=SpanKind.CONSUMER,
        links=[Link(producer_span)] if producer_span.is_valid else [],
        attributes=attributes,
    ):
        yield


def current_trace_id() -> str | None:
    """The trace id of the run in progress, for log lines (None when tracing is off)."""
    if _tracer is None:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None

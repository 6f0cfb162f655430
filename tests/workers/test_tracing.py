"""Tracing: a backend request's trace continues through the producer into the job's run in a real
worker, down to its SQL and Redis calls; off, the documents carry nothing and no span is made."""

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased
from opentelemetry.trace import SpanKind

from jobfleet import keys, wire
from jobfleet.producer import Producer
from tests.factories import ago
from tests.ops.support import run_burst
from workers import tracing

EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module")
def traced(settings, deps):
    provider = TracerProvider(sampler=ParentBased(root=tracing.JobRunsOnly()))
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    trace.set_tracer_provider(provider)  # the "backend" and the producer use the global one
    assert tracing.configure(settings, [deps.pinteach, deps.pickatale], provider=provider)
    yield provider
    tracing.shutdown()  # the other tests of this process run untraced
    provider.shutdown()


def test_tracing_is_off_without_otel_variables(settings):
    assert settings.tracing_enabled is False
    assert tracing.configure(settings, []) is tracing.enabled()


async def test_a_request_traced_into_the_job_and_its_sql(traced, settings, deps, redis, seed):
    await seed.individual(ends_at=ago(minutes=20))
    EXPORTER.clear()
    tracer = trace.get_tracer("the backend")
    async with Producer(redis) as producer:
        with tracer.start_as_current_span("POST /sessions/end", kind=SpanKind.SERVER) as request:
            job_id = await producer.enqueue("sessions.auto_complete", {}, key="traced")
    document = wire.decode(await redis.get(keys.job_key_prefix + job_id))
    request_trace = format(request.get_span_context().trace_id, "032x")
    assert wire.trace_id(document["tc"]) == request_trace, "the document carries the request's context"

    await run_burst(settings, deps, redis, keys.QUEUE_SWEEPS)
    result = wire.decode(await redis.get(keys.result_key_prefix + job_id))
    assert result["s"] is True and result["r"]["completed"] == 1
    assert wire.trace_id(result["tc"]) == request_trace, "the result names the trace too"

    spans = [
        s for s in EXPORTER.get_finished_spans() if s.context.trace_id == request.get_span_context().trace_id
    ]
    by_id = {s.context.span_id: s for s in spans}
    (send,) = [s for s in spans if s.kind == SpanKind.PRODUCER]
    (run,) = [s for s in spans if s.kind == SpanKind.CONSUMER]
    assert send.parent.span_id == request.get_span_context().span_id
    assert run.parent.span_id == send.context.span_id, "the run is a child of the enqueue"
    assert [link.context.span_id for link in run.links] == [send.context.span_id], "and linked to it"
    assert run.name == "process sweeps" and send.name == "send sweeps"
    assert run.attributes["messaging.system"] == "jobfleet"
    assert run.attributes["messaging.operation.name"] == "process"
    assert run.attributes["messaging.destination.name"] == "sweeps"
    assert run.attributes["messaging.message.id"] == job_id
    assert run.attributes["jobfleet.job.try"] == 1
    below_run = [s for s in spans if s.parent is not None and _descends(s, run, by_id)]
    sql = [
        s
        for s in below_run
        if s.attributes.get("db.system") == "postgresql"
        or "postgresql" in str(s.attributes.get("db.system.name", ""))
    ]
    redis_calls = [
        s
        for s in below_run
        if s.attributes.get("db.system") == "redis" or s.attributes.get("db.system.name") == "redis"
    ]
    assert sql, f"the job's SQL is under its run: {[s.name for s in below_run]}"
    assert any(
        "UPDATE" in (s.attributes.get("db.statement") or s.attributes.get("db.query.text") or "") for s in sql
    )
    assert redis_calls, "the run's Redis calls (its last-run record) are under it"
    assert all(s.kind == SpanKind.CLIENT for s in below_run)
    print("\n" + render(spans))  # the README's rendering comes from here (pytest -s)


def render(spans) -> str:
    """The span tree as indented text: name, kind, duration, and the SQL or Redis command."""
    children: dict = {}
    for span in sorted(spans, key=lambda s: s.start_time):
        children.setdefault(span.parent.span_id if span.parent else None, []).append(span)
    ids = {s.context.span_id for s in spans}
    lines: list[str] = []

    def walk(span, depth: int) -> None:
        what = span.attributes.get("db.statement") or span.attributes.get("db.query.text") or ""
        what = " ".join(str(what).split())[:70]
        ms = (span.end_time - span.start_time) / 1e6
        lines.append(f"{'  ' * depth}{span.name} [{span.kind.name}] {ms:.1f} ms {what}".rstrip())
        for child in children.get(span.context.span_id, []):
            walk(child, depth + 1)

    for root in [s for s in spans if s.parent is None or s.parent.span_id not in ids]:
        walk(root, 0)
    return "\n".join(lines)


def _descends(span, ancestor, by_id) -> bool:
    while span.parent is not None:
        if span.parent.span_id == ancestor.context.span_id:
            return True
        span = by_id.get(span.parent.span_id)
        if span is None:
            return False
    return False


async def test_each_retry_is_a_run_of_its_own(traced, settings, deps, redis):
    EXPORTER.clear()
    tracer = trace.get_tracer("the backend")
    async with Producer(redis) as producer:
        with tracer.start_as_current_span("POST /probe", kind=SpanKind.SERVER):
            job_id = await producer.enqueue("fleet.noop", key="twice")
    await run_burst(settings, deps, redis)
    # ops retry the job by hand: the same document again, a second run in the same trace
    await redis.delete(keys.result_key_prefix + job_id)
    async with Producer(redis) as producer:
        with tracer.start_as_current_span("POST /probe", kind=SpanKind.SERVER):
            await producer.enqueue("fleet.noop", key="twice")
    await run_burst(settings, deps, redis)
    runs = [s for s in EXPORTER.get_finished_spans() if s.kind == SpanKind.CONSUMER]
    assert [s.attributes["messaging.message.id"] for s in runs] == [job_id, job_id]
    assert runs[0].context.span_id != runs[1].context.span_id


async def test_a_malformed_trace_context_is_ignored_and_the_job_runs(settings, deps, redis):
    document = {
        "t": None,
        "f": "fleet.noop",
        "a": [],
        "k": {},
        "et": wire.now_ms(),
        "tc": {"traceparent": "nope"},
    }
    await redis.set(keys.job_key_prefix + "odd", wire.encode(document))
    await redis.zadd(keys.QUEUE_DEFAULT, {"odd": wire.now_ms()})
    await run_burst(settings, deps, redis)
    result = wire.decode(await redis.get(keys.result_key_prefix + "odd"))
    assert result["s"] is True and "tc" not in result

"""The cost of tracing: no-op jobs/s with tracing off (the default) and on, exporting every run's
spans over OTLP/HTTP to a local sink that answers 200, as a collector would."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from redis.asyncio import Redis

from ops.bench import throughput
from ops.bench import workers_under_test as wut
from ops.bench.report import Section


class _Sink(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


@contextmanager
def otlp_sink() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def rate(redis_url: str, env: dict[str, str], n: int) -> float:
    worker = wut.JOBFLEET_UVLOOP
    redis = Redis.from_url(redis_url)
    try:
        await redis.flushall()
        ids = await throughput.prefill(redis, worker, "noop", n)
        process = worker.start(redis_url, env)
        try:
            results = await throughput.collect_results(redis, ids, process, worker.deserializer())
        finally:
            process.stop()
    finally:
        await redis.aclose()
    span_s = (max(r.finish_time for r in results) - min(r.start_time for r in results)).total_seconds()
    return n / span_s


async def bench_tracing(redis_url: str, jobs: int, runs: int) -> Section:
    section = Section("Tracing off and on (no-op jobs, jobfleet on uvloop, OTLP/HTTP to a local sink)")
    with otlp_sink() as endpoint:
        cases = {"tracing off": {}, "tracing on": {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}}
        for run in range(runs):
            for case in cases if run % 2 == 0 else reversed(list(cases)):
                section.figure(f"jobs/s, {case}", "jobs/s").runs.append(
                    await rate(redis_url, cases[case], jobs)
                )
    section.ratio(
        "tracing on / off, jobs/s",
        section.figure("jobs/s, tracing on", "jobs/s"),
        section.figure("jobs/s, tracing off", "jobs/s"),
    )
    return section

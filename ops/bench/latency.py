"""Enqueue-to-start latency at a steady 200 jobs/s, and the producer's enqueue rate."""

import asyncio
import statistics
import time
from collections.abc import Callable

from arq.connections import ArqRedis
from redis.asyncio import ConnectionPool, Redis

from jobfleet import wire
from jobfleet.producer import Job, Producer
from ops.bench import workers_under_test as wut
from ops.bench.report import Section
from ops.bench.throughput import Sizes, collect_results, progress
from ops.bench.workers_under_test import WorkerUnderTest


def arq_client(redis_url: str, serializer: Callable | None, deserializer: Callable | None) -> ArqRedis:
    return ArqRedis(
        ConnectionPool.from_url(redis_url), job_serializer=serializer, job_deserializer=deserializer
    )


async def latency_once(
    redis_url: str, worker: WorkerUnderTest, duration_s: float, rate: float = 200
) -> list[float]:
    """Enqueue one job every 1/rate seconds through the real client; each job's start minus enqueue."""
    redis = Redis.from_url(redis_url)
    arq = arq_client(redis_url, worker.serializer(), worker.deserializer())
    producer = Producer(redis)
    function, kwargs = worker.job("noop")

    async def enqueue() -> str:
        if worker.kind == "jobfleet":
            return await producer.enqueue(function, kwargs)
        job = await arq.enqueue_job(function, _queue_name=worker.queue, **kwargs)
        return job.job_id

    try:
        await redis.flushall()
        process = worker.start(redis_url)
        try:
            warm = [await enqueue() for _ in range(20)]
            await collect_results(redis, warm, process, worker.deserializer())
            ids, start = [], time.monotonic()
            for i in range(int(duration_s * rate)):
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                ids.append(await enqueue())
            results = await collect_results(redis, ids, process, worker.deserializer())
        finally:
            process.stop()
    finally:
        await arq.aclose()
        await redis.aclose()
    return [(r.start_time - r.enqueue_time).total_seconds() * 1000 for r in results]


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]


async def bench_latency(redis_url: str, sizes: Sizes) -> Section:
    section = Section("Enqueue-to-start latency at 200 jobs/s")
    for round_no in range(sizes.runs):
        order = (wut.JOBFLEET_UVLOOP, wut.ARQ_UVLOOP)
        for worker in order if round_no % 2 == 0 else order[::-1]:
            waits = await latency_once(redis_url, worker, sizes.latency_s)
            progress(f"latency round {round_no + 1}/{sizes.runs} {worker.name}: p99 {p99(waits):.0f} ms")
            section.figure(f"p99: {worker.name}", "ms", note=f"{len(waits):,} jobs per run").runs.append(
                p99(waits)
            )
            section.figure(f"p50: {worker.name}", "ms").runs.append(statistics.median(waits))
    jf = section.figure(f"p99: {wut.JOBFLEET_UVLOOP.name}", "ms")
    section.check_figure("p99 jobfleet, its defaults (100 jobs, poll 0.01 s)", jf, "ms", under=15)
    section.ratio(
        "p99 jobfleet / tuned arq (lower is better)", jf, section.figure(f"p99: {wut.ARQ_UVLOOP.name}", "ms")
    )
    section.notes.append(
        "Jobs enqueued one at a time on a fixed schedule (producer `enqueue` for jobfleet, `enqueue_job` for arq) "
        "to an idle, warmed-up worker; start and enqueue times are the ms timestamps arq stores in the result."
    )
    return section


async def enqueue_rates(redis_url: str, n: int) -> dict[str, float]:
    redis = Redis.from_url(redis_url)
    arq = arq_client(redis_url, wire.encode, wire.decode)
    producer = Producer(redis)
    rates = {}
    try:
        await redis.flushall()
        start = time.perf_counter()
        for _ in range(n):
            await producer.enqueue("fleet.noop")
        rates["single"] = n / (time.perf_counter() - start)
        await redis.flushall()
        start = time.perf_counter()
        await producer.enqueue_many([Job("fleet.noop")] * n)
        rates["bulk"] = n / (time.perf_counter() - start)
        await redis.flushall()
        start = time.perf_counter()
        for _ in range(n):
            await arq.enqueue_job("noop", _queue_name="arq:bench")
        rates["arq"] = n / (time.perf_counter() - start)
        await redis.flushall()
    finally:
        await arq.aclose()
        await redis.aclose()
    return rates


async def bench_enqueue(redis_url: str, sizes: Sizes) -> Section:
    section = Section("Enqueue rate")
    for round_no in range(sizes.runs):
        rates = await enqueue_rates(redis_url, sizes.enqueue)
        progress(f"enqueue round {round_no + 1}/{sizes.runs}: single {rates['single']:,.0f}/s")
        section.figure("jobfleet producer `enqueue`, one at a time", "jobs/s").runs.append(rates["single"])
        section.figure("jobfleet producer `enqueue_many`, one pipeline", "jobs/s").runs.append(rates["bulk"])
        section.figure("arq `enqueue_job`, one at a time", "jobs/s").runs.append(rates["arq"])
    single, bulk, arq = section.figures
    section.ratio("bulk / single", bulk, single, at_least=3)
    section.ratio("jobfleet single / arq enqueue_job", single, arq)
    section.notes.append(
        f"{sizes.enqueue:,} `fleet.noop` jobs per run, validated, through the Lua enqueue script."
    )
    return section

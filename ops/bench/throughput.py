"""Worker throughput, enqueue-to-start latency, enqueue rate and worker memory, on a private Redis.

Throughput: the queue is filled first, then one worker process is started; the rate is the number
of jobs over the span from the first job's start to the last job's finish, both taken from the
results the worker stored (so process start-up is not counted, for any contender).
"""

import asyncio
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from arq.connections import ArqRedis
from arq.constants import expires_extra_ms
from arq.jobs import deserialize_result
from redis.asyncio import ConnectionPool, Redis

from jobfleet import keys, wire
from jobfleet.producer import Job, Producer
from ops.bench import workers_under_test as wut
from ops.bench.report import Section
from ops.bench.workers_under_test import WorkerUnderTest

QUOTED_PEERS = {"taskiq": 5400.0, "dramatiq (100 threads)": 6600.0}


@dataclass(frozen=True)
class Sizes:
    jobs: int  # per throughput run
    latency_s: float  # at a steady 200 jobs/s
    enqueue: int
    memory_jobs: int
    runs: int


def arq_client(redis_url: str, serializer: Callable | None, deserializer: Callable | None) -> ArqRedis:
    return ArqRedis(
        ConnectionPool.from_url(redis_url), job_serializer=serializer, job_deserializer=deserializer
    )


async def prefill(redis: Redis, worker: WorkerUnderTest, work: str, n: int) -> list[str]:
    now = wire.now_ms()
    ids = [uuid.uuid4().hex for _ in range(n)]
    document = worker.document(work, now)
    for start in range(0, n, 5000):
        async with redis.pipeline(transaction=False) as pipe:
            chunk = ids[start : start + 5000]
            for job_id in chunk:
                pipe.psetex(keys.job_key_prefix + job_id, expires_extra_ms, document)
            pipe.zadd(worker.queue, dict.fromkeys(chunk, now))
            await pipe.execute()
    return ids


async def wait_for_results(
    redis: Redis, ids: list[str], process: wut.WorkerProcess, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    done = 0
    while time.monotonic() < deadline:
        process.check_alive()
        async with redis.pipeline(transaction=False) as pipe:
            for start in range(0, len(ids), 2000):
                pipe.exists(*(keys.result_key_prefix + i for i in ids[start : start + 2000]))
            done = sum(await pipe.execute())
        if done == len(ids):
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"only {done} of {len(ids)} jobs finished within {timeout_s:.0f} s")


async def read_results(redis: Redis, ids: list[str], deserializer: Callable | None) -> list:
    results = []
    for start in range(0, len(ids), 2000):
        raws = await redis.mget([keys.result_key_prefix + i for i in ids[start : start + 2000]])
        results += [deserialize_result(raw, deserializer=deserializer) for raw in raws]
    failed = [r for r in results if not r.success]
    if failed:
        raise RuntimeError(f"{len(failed)} benchmark jobs failed, e.g. {failed[0].result!r}")
    return results


async def throughput_once(redis_url: str, worker: WorkerUnderTest, work: str, n: int) -> float:
    redis = Redis.from_url(redis_url)
    try:
        await redis.flushall()
        ids = await prefill(redis, worker, work, n)
        process = worker.start(redis_url)
        try:
            await wait_for_results(redis, ids, process, timeout_s=60 + n / 10)
        finally:
            process.stop()
        results = await read_results(redis, ids, worker.deserializer())
    finally:
        await redis.aclose()
    span_s = (max(r.finish_time for r in results) - min(r.start_time for r in results)).total_seconds()
    return n / span_s


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
            await wait_for_results(redis, warm, process, timeout_s=60)
            ids, start = [], time.monotonic()
            for i in range(int(duration_s * rate)):
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                ids.append(await enqueue())
            await wait_for_results(redis, ids, process, timeout_s=60)
        finally:
            process.stop()
        results = await read_results(redis, ids, worker.deserializer())
    finally:
        await arq.aclose()
        await redis.aclose()
    return [(r.start_time - r.enqueue_time).total_seconds() * 1000 for r in results]


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]


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


async def memory(redis_url: str, n: int) -> dict[str, float]:
    """RSS of one jobfleet worker at start, after a warm-up tenth of the jobs, and at the end."""
    redis = Redis.from_url(redis_url)
    worker = wut.JOBFLEET_UVLOOP
    rss: dict[str, float] = {}
    try:
        await redis.flushall()
        process = worker.start(redis_url)
        try:
            first = await prefill(redis, worker, "noop", 1)
            await wait_for_results(redis, first, process, timeout_s=60)
            rss["start (after 1 job)"] = process.rss_mib()
            fed, chunk, marks = 0, 10_000, {n // 10: "after warm-up (10%)", n // 2: "half-way", n: "end"}
            while fed < n:
                # keep the backlog bounded: feed more only when the worker has caught up
                if await redis.zcard(worker.queue) < chunk:
                    size = min(chunk, n - fed)
                    await prefill(redis, worker, "noop", size)
                    fed += size
                    for mark, label in marks.items():
                        if fed - size < mark <= fed and label != "end":
                            rss[label] = process.rss_mib()
                else:
                    process.check_alive()
                    await asyncio.sleep(0.05)
            while await redis.zcard(worker.queue):
                await asyncio.sleep(0.05)
            await asyncio.sleep(1)
            rss["end"] = process.rss_mib()
        finally:
            process.stop()
    finally:
        await redis.flushall()
        await redis.aclose()
    return rss


async def bench_workers(redis_url: str, sizes: Sizes) -> list[Section]:
    section = Section("Worker throughput")
    contenders = [
        wut.JOBFLEET_ASYNCIO,
        wut.ARQ_ASYNCIO,
        wut.JOBFLEET_UVLOOP,
        wut.ARQ_UVLOOP,
        wut.ARQ_DEFAULTS,
    ]
    for work, unit in (("noop", "no-op jobs/s"), ("sleep", "10 ms I/O jobs/s")):
        for _ in range(sizes.runs):  # interleaved, so a drift of the machine hits every contender alike
            for worker in contenders:
                # arq's defaults manage ~200 no-op or ~20 I/O jobs/s: fewer jobs keep the run short
                n = (
                    sizes.jobs
                    if worker is not wut.ARQ_DEFAULTS
                    else max(sizes.jobs // (10 if work == "noop" else 50), 100)
                )
                rate = await throughput_once(redis_url, worker, work, n)
                section.figure(f"{work}: {worker.name}", unit, note=f"{n:,} jobs per run").runs.append(rate)
    for work in ("noop", "sleep"):
        fig = {w: section.figure(f"{work}: {w.name}", "").median for w in contenders}
        section.ratio(
            f"{work}: jobfleet / tuned arq, asyncio loop",
            fig[wut.JOBFLEET_ASYNCIO],
            fig[wut.ARQ_ASYNCIO],
            at_least=1.2,
        )
        section.ratio(
            f"{work}: jobfleet / tuned arq, uvloop",
            fig[wut.JOBFLEET_UVLOOP],
            fig[wut.ARQ_UVLOOP],
            at_least=1.0,
        )
        section.ratio(
            f"{work}: jobfleet (uvloop) / arq defaults", fig[wut.JOBFLEET_UVLOOP], fig[wut.ARQ_DEFAULTS]
        )
    best = section.figure(f"noop: {wut.JOBFLEET_UVLOOP.name}", "").median
    for peer, quoted in QUOTED_PEERS.items():
        section.ratio(f"noop: jobfleet (uvloop) / {peer}, quoted {quoted:,.0f}/s", best, quoted)
    section.notes += [
        "Each worker is its own process on one private redis-server; the queue is filled first and the rate is "
        "jobs / (last finish - first start) from the stored results. The jobfleet worker is "
        "`python -m cli worker --queue default --no-scheduler --concurrency 100` with "
        "`JOBFLEET_WORKER_POLL_DELAY_S=0.01`, JSON log lines (to a file), failure record, stats and heartbeat on; "
        "the asyncio rows start it through `ops.bench.launch`, which hides uvloop from the CLI.",
        "Bare arq: `ops/bench/arq_worker.py`, `max_jobs=100, poll_delay=0.01`, orjson serializer.",
    ]
    section.notes.append(
        "taskiq and dramatiq: the figures quoted in issue 8, not measured here (taskiq-redis needs redis-py 8, "
        "which arq's pin excludes from the project's environment)."
    )

    latency = Section("Enqueue-to-start latency at 200 jobs/s")
    for _ in range(sizes.runs):
        for worker in (wut.JOBFLEET_UVLOOP, wut.ARQ_UVLOOP):
            waits = await latency_once(redis_url, worker, sizes.latency_s)
            latency.figure(f"p99: {worker.name}", "ms", note=f"{len(waits):,} jobs per run").runs.append(
                p99(waits)
            )
            latency.figure(f"p50: {worker.name}", "ms").runs.append(statistics.median(waits))
    jf = latency.figure(f"p99: {wut.JOBFLEET_UVLOOP.name}", "ms").median
    latency.check("p99 jobfleet, its defaults (100 jobs, poll 0.01 s)", jf, "ms", under=15)
    latency.ratio(
        "p99 jobfleet / tuned arq (lower is better)",
        jf,
        latency.figure(f"p99: {wut.ARQ_UVLOOP.name}", "ms").median,
    )
    latency.notes.append(
        "Jobs enqueued one at a time on a fixed schedule (producer `enqueue` for jobfleet, `enqueue_job` for arq) "
        "to an idle, warmed-up worker; start and enqueue times are the ms timestamps arq stores in the result."
    )

    enqueue = Section("Enqueue rate")
    for _ in range(sizes.runs):
        rates = await enqueue_rates(redis_url, sizes.enqueue)
        enqueue.figure("jobfleet producer `enqueue`, one at a time", "jobs/s").runs.append(rates["single"])
        enqueue.figure("jobfleet producer `enqueue_many`, one pipeline", "jobs/s").runs.append(rates["bulk"])
        enqueue.figure("arq `enqueue_job`, one at a time", "jobs/s").runs.append(rates["arq"])
    single, bulk, arq = (f.median for f in enqueue.figures)
    enqueue.ratio("bulk / single", bulk, single, at_least=3)
    enqueue.ratio("jobfleet single / arq enqueue_job", single, arq)
    enqueue.notes.append(
        f"{sizes.enqueue:,} `fleet.noop` jobs per run, validated, through the Lua enqueue script."
    )

    mem = Section("Worker memory")
    rss = await memory(redis_url, sizes.memory_jobs)
    for label, mib in rss.items():
        mem.figure(f"RSS {label}", "MiB", note=f"{sizes.memory_jobs:,} no-op jobs").runs.append(mib)
    warm = rss["after warm-up (10%)"]
    mem.ratio("RSS end / after warm-up", rss["end"], warm, under=1.1)
    mem.notes.append(
        "One jobfleet worker (uvloop, concurrency 100) fed in chunks of 10,000 jobs; RSS from /proc."
    )
    return [section, latency, enqueue, mem]

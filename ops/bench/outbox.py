"""The outbox relay: commit-to-job-start latency at 200 rows/s, with LISTEN and with the sweep alone,
the relay's throughput against relaying one row per transaction, and the outbox's size meanwhile.

Latency: a backend commits one outbox row per transaction (``Producer.enqueue_in_transaction`` on
asyncpg) at a steady 200 rows/s into a real worker process (relay and queue in one process, as
shipped); each row's wait is the job's start time (from its stored result) minus the moment its
COMMIT returned. A sampler counts the outbox every 100 ms meanwhile. Throughput: the relay alone,
in this process, draining a prefilled outbox into a private Redis; CPU time beside wall time.
"""

import asyncio
import os
import secrets
import statistics
import sys
import time
from dataclasses import dataclass

import asyncpg
from redis.asyncio import Redis
from sqlalchemy import text

from db.engines import libpq_dsn, pinteach_engine
from db.schema import create_pinteach
from jobfleet import keys, wire
from jobfleet.producer import Producer
from ops.bench.latency import p99
from ops.bench.report import Section
from ops.bench.throughput import collect_results
from ops.bench.workers_under_test import ROOT, WorkerProcess
from workers.logging import configure
from workers.outbox import OutboxRelay

RATE = 200
SWEEP_S = 1.0


@dataclass(frozen=True)
class OutboxSizes:
    latency_s: float  # per latency run, at RATE rows/s
    rows: int  # prefilled rows per throughput run
    runs: int


SIZES = {
    "full": OutboxSizes(latency_s=20, rows=50_000, runs=3),
    "quick": OutboxSizes(latency_s=5, rows=10_000, runs=3),
    "tiny": OutboxSizes(latency_s=1, rows=1_000, runs=1),
}


def start_worker(redis_url: str, dsn: str, listen: bool) -> WorkerProcess:
    argv = [sys.executable, "-m", "cli", "worker", "--queue", "default", "--no-scheduler"]
    env = {
        "JOBFLEET_REDIS_URL": redis_url,
        "JOBFLEET_PINTEACH_DSN": dsn,
        "JOBFLEET_OUTBOX_LISTEN": "true" if listen else "false",
        "JOBFLEET_OUTBOX_SWEEP_S": str(SWEEP_S),
        "JOBFLEET_LOG_LEVEL": "INFO",
        "JOBFLEET_LOG_FORMAT": "json",
        "PYTHONPATH": str(ROOT),
    }
    return WorkerProcess(argv, {**os.environ, **env})


async def reset(dsn: str, redis: Redis) -> None:
    conn = await asyncpg.connect(libpq_dsn(dsn))
    try:
        await conn.execute("TRUNCATE job_outbox")
    finally:
        await conn.close()
    await redis.flushall()


async def commit_rows(dsn: str, producer: Producer, prefix: str, n: int, rate: float) -> dict[str, float]:
    """One row per transaction at ``rate``; each job id with the wall time (ms) its COMMIT returned."""
    conn = await asyncpg.connect(libpq_dsn(dsn))
    committed: dict[str, float] = {}
    try:
        start = time.monotonic()
        for i in range(n):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            async with conn.transaction():
                job_id = await producer.enqueue_in_transaction(conn, "fleet.noop", key=f"{prefix}-{i}")
            committed[job_id] = time.time() * 1000
    finally:
        await conn.close()
    return committed


async def sample_size(dsn: str, stop: asyncio.Event, every_s: float = 0.1) -> list[tuple[float, int]]:
    conn = await asyncpg.connect(libpq_dsn(dsn))
    samples = []
    try:
        start = time.monotonic()
        while not stop.is_set():
            samples.append((time.monotonic() - start, await conn.fetchval("SELECT count(*) FROM job_outbox")))
            await asyncio.sleep(every_s)
    finally:
        await conn.close()
    return samples


async def latency_once(
    dsn: str, redis_url: str, listen: bool, duration_s: float
) -> tuple[list[float], list[tuple[float, int]]]:
    redis = Redis.from_url(redis_url)
    producer = Producer(redis)
    try:
        await reset(dsn, redis)
        process = start_worker(redis_url, dsn, listen)
        try:
            warm = await commit_rows(dsn, producer, "warm", 20, RATE)
            await collect_results(redis, list(warm), process, wire.decode)
            stop = asyncio.Event()
            sampler = asyncio.create_task(sample_size(dsn, stop))
            committed = await commit_rows(dsn, producer, "lat", int(duration_s * RATE), RATE)
            stop.set()
            samples = await sampler
            results = await collect_results(redis, list(committed), process, wire.decode)
        finally:
            process.stop()
    finally:
        await redis.aclose()
    waits = [r.start_time.timestamp() * 1000 - at for r, at in zip(results, committed.values(), strict=True)]
    return waits, samples


async def prefill(dsn: str, n: int) -> None:
    conn = await asyncpg.connect(libpq_dsn(dsn))
    try:
        await conn.execute(
            "INSERT INTO job_outbox (job, payload) SELECT 'fleet.noop', '{}' FROM generate_series(1, $1)", n
        )
        await conn.execute("VACUUM ANALYZE job_outbox")
    finally:
        await conn.close()


async def relay_throughput(
    dsn: str, redis_url: str, n: int, relays: int, batch_size: int
) -> tuple[float, float]:
    """Rows/s and CPU ms per 1,000 rows of ``relays`` relays draining ``n`` rows at once."""
    redis = Redis.from_url(redis_url)
    contenders = [OutboxRelay(dsn, redis, batch_size=batch_size, listen=False) for _ in range(relays)]
    try:
        await reset(dsn, redis)
        await prefill(dsn, n)
        for relay in contenders:  # connect first: opening the connection is not the relay's cost
            async with relay.engine.connect():
                pass
        wall, cpu = time.perf_counter(), time.process_time()
        counts = await asyncio.gather(*(r.drain() for r in contenders))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        relayed = sum(c["enqueued"] for c in counts)
        if relayed != n or await redis.zcard(keys.QUEUE_DEFAULT) != n:
            raise RuntimeError(f"the relay enqueued {relayed} of {n} rows")
    finally:
        for relay in contenders:
            await relay.close()
        await redis.aclose()
    return n / wall, cpu * 1000 / n * 1000


async def row_at_a_time(dsn: str, redis_url: str, n: int) -> float:
    """The reference: one transaction per row (claim one, enqueue it, delete it, commit)."""
    redis = Redis.from_url(redis_url)
    producer = Producer(redis)
    engine = pinteach_engine(dsn, pool_size=1)
    claim = text("SELECT id, job, payload FROM job_outbox ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED")
    try:
        await reset(dsn, redis)
        await prefill(dsn, n)
        start = time.perf_counter()
        async with engine.connect() as conn:
            while True:
                async with conn.begin():
                    row = (await conn.execute(claim)).first()
                    if row is None:
                        break
                    await producer.enqueue(row.job, row.payload, key=f"outbox-{row.id}")
                    await conn.execute(text("DELETE FROM job_outbox WHERE id = :id"), {"id": row.id})
        return n / (time.perf_counter() - start)
    finally:
        await engine.dispose()
        await redis.aclose()


def _timeline(samples: list[tuple[float, int]], points: int = 12) -> str:
    step = max(len(samples) // points, 1)
    return ", ".join(f"{t:.1f} s: {size}" for t, size in samples[::step])


async def bench_outbox(admin_dsn: str, redis_url: str, size: str, runs: int | None) -> tuple[Section, str]:
    sizes = SIZES[size]
    runs = runs or sizes.runs
    configure("WARNING", "console", stderr=True)  # the in-process relays' per-batch lines stay quiet
    section = Section("Outbox relay (PostgreSQL job_outbox to Redis)")
    name = f"jf_bench_{secrets.token_hex(3)}_outbox"
    admin = await asyncpg.connect(admin_dsn)
    version = await admin.fetchval("SHOW server_version")
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = admin_dsn.rsplit("/", 1)[0] + "/" + name
    timelines: dict[str, str] = {}
    try:
        engine = pinteach_engine(dsn, pool_size=1)
        await create_pinteach(engine)
        await engine.dispose()
        reference_rows = max(sizes.rows // 20, 200)
        for _ in range(runs):  # interleaved, so a drift of the machine hits every contender alike
            for listen, label in ((True, "LISTEN + 1 s sweep"), (False, "1 s sweep alone")):
                waits, samples = await latency_once(dsn, redis_url, listen, sizes.latency_s)
                n = f"{len(waits):,} rows per run at {RATE}/s"
                section.figure(f"commit-to-start p99, {label}", "ms", note=n).runs.append(p99(waits))
                section.figure(f"commit-to-start p50, {label}", "ms").runs.append(statistics.median(waits))
                section.figure(f"outbox rows, max during the run, {label}", "rows").runs.append(
                    max(s for _, s in samples)
                )
                section.figure(f"outbox rows, last sample, {label}", "rows").runs.append(samples[-1][1])
                timelines[label] = _timeline(samples)
            for relays in (1, 2):
                rate, cpu = await relay_throughput(dsn, redis_url, sizes.rows, relays, 500)
                what = "one relay" if relays == 1 else "two relays at once"
                note = f"{sizes.rows:,} rows, batches of 500"
                section.figure(f"relay rows/s, {what}", "rows/s", note=note).runs.append(rate)
                section.figure(f"relay CPU per 1,000 rows, {what}", "ms CPU").runs.append(cpu)
            section.figure(
                "reference: one row per transaction", "rows/s", note=f"{reference_rows:,} rows"
            ).runs.append(await row_at_a_time(dsn, redis_url, reference_rows))
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()

    fig = {f.case: f for f in section.figures}  # Figures, so that each row gets its min-max
    section.check_figure(
        "commit-to-start p99 with LISTEN", fig["commit-to-start p99, LISTEN + 1 s sweep"], "ms", under=50
    )
    section.check_figure(
        "commit-to-start p99, sweep alone",
        fig["commit-to-start p99, 1 s sweep alone"],
        "ms",
        under=SWEEP_S * 1000,
    )
    section.check_figure(
        "relay throughput, one relay", fig["relay rows/s, one relay"], "rows/s", at_least=5000
    )
    section.ratio(
        "relay rows/s, batches / one row per transaction",
        fig["relay rows/s, one relay"],
        fig["reference: one row per transaction"],
        at_least=10,
    )
    section.ratio(
        "relay rows/s, two relays / one",
        fig["relay rows/s, two relays at once"],
        fig["relay rows/s, one relay"],
    )
    section.check_figure(
        f"outbox rows at the end of the {RATE} rows/s run, LISTEN (does not grow)",
        fig["outbox rows, last sample, LISTEN + 1 s sweep"],
        "rows",
        under=RATE,
    )
    section.notes += [
        f"Latency: `python -m cli worker --queue default --no-scheduler` (relay inside, uvloop, "
        f"`JOBFLEET_OUTBOX_SWEEP_S={SWEEP_S:g}`, `JOBFLEET_OUTBOX_LISTEN` true or false) on a private "
        f"redis-server; the backend commits `fleet.noop` rows one per transaction at {RATE}/s from "
        "this process. Start time is arq's, from the stored result; commit time is when COMMIT returned.",
        "Throughput: `OutboxRelay.drain()` in this process (asyncio loop) on a prefilled outbox; each "
        "batch is one claim-and-delete statement, one Redis script call and a commit. The reference "
        "claims one row `FOR UPDATE SKIP LOCKED`, enqueues it with the producer, deletes it and commits.",
        "Outbox size sampled every 100 ms during the latency runs (last run): "
        + "; ".join(f"{label}: {line}" for label, line in timelines.items()),
    ]
    return section, version

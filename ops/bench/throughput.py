"""Worker throughput: jobfleet against tuned bare arq, no-op and 10 ms I/O jobs, both event loops.

Each run fills the queue first, then spawns one worker process and reads every job's result as it
lands. Three figures come out of a run:

- jobs/s from the first job's start to the last job's finish (both stored by the worker itself);
- jobs/s from spawning the process to the last finish (start-up included, as a restart pays it);
- worker CPU per job: the process's user + system CPU seconds over the jobs (start-up included),
  steadier than wall time on a shared machine.

Contenders take turns: every round runs each once, in an order rotated from the previous round,
so a drift of the machine hits all of them alike.
"""

import asyncio
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from arq.constants import expires_extra_ms
from arq.jobs import JobResult, deserialize_result
from redis.asyncio import Redis

from jobfleet import keys, wire
from ops.bench import workers_under_test as wut
from ops.bench.report import Section
from ops.bench.workers_under_test import WorkerUnderTest

QUOTED_PEERS = {"taskiq": 5400.0, "dramatiq (100 threads)": 6600.0}
MIN_RATE_PER_S = 20  # below this a run is considered stuck, whatever its size
STALL_S = 60  # no job finished for this long: the worker is stuck, say so instead of waiting on
CONTENDERS = (wut.JOBFLEET_ASYNCIO, wut.ARQ_ASYNCIO, wut.JOBFLEET_UVLOOP, wut.ARQ_UVLOOP, wut.ARQ_DEFAULTS)
PAIRS = (
    (wut.JOBFLEET_ASYNCIO, wut.ARQ_ASYNCIO, "asyncio loop"),
    (wut.JOBFLEET_UVLOOP, wut.ARQ_UVLOOP, "uvloop"),
)
WORKLOADS = {"noop": "no-op", "sleep": "10 ms I/O"}


@dataclass(frozen=True)
class Sizes:
    jobs: int  # per throughput run
    latency_s: float  # at a steady 200 jobs/s
    enqueue: int
    memory_jobs: int
    runs: int


@dataclass(frozen=True)
class Run:
    jobs: int
    spawned_at: float
    first_start: float
    last_finish: float
    cpu_s: float

    @property
    def rate(self) -> float:
        return self.jobs / (self.last_finish - self.first_start)

    @property
    def spawn_to_done_rate(self) -> float:
        return self.jobs / (self.last_finish - self.spawned_at)

    @property
    def startup_s(self) -> float:
        return self.first_start - self.spawned_at

    @property
    def cpu_ms_per_job(self) -> float:
        return self.cpu_s * 1000 / self.jobs


def progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


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


async def collect_results(
    redis: Redis, ids: list[str], process: wut.WorkerProcess, deserializer: Callable | None
) -> list[JobResult]:
    """Every job's result (in the order of ``ids``), read as it lands: fleet.noop keeps its result
    60 s only, less than a long run lasts. Bounded: a dead worker, or one that finishes nothing for
    STALL_S, raises."""
    # equal scores: the queue hands out ids in their sort order, so finished ones are at the front
    pending, found_by_id = sorted(ids), {}
    deadline = time.monotonic() + 60 + len(ids) / MIN_RATE_PER_S
    last_progress = time.monotonic()
    while pending:
        process.check_alive()
        now = time.monotonic()
        if now > deadline or now - last_progress > STALL_S:
            raise TimeoutError(f"only {len(found_by_id)} of {len(ids)} jobs finished; the worker looks stuck")
        still: list[str] = []
        for start in range(0, len(pending), 2000):
            chunk = pending[start : start + 2000]
            raws = await redis.mget([keys.result_key_prefix + i for i in chunk])
            found = {
                i: deserialize_result(raw, deserializer=deserializer)
                for i, raw in zip(chunk, raws, strict=True)
                if raw is not None
            }
            still += [i for i in chunk if i not in found]
            found_by_id.update(found)
            if not found:  # the later ids have not run yet
                still += pending[start + 2000 :]
                break
        if len(still) < len(pending):
            last_progress = time.monotonic()
        pending = still
        if pending:
            await asyncio.sleep(0.2)
    results = [found_by_id[i] for i in ids]  # in the order asked for
    failed = [r for r in results if not r.success]
    if failed:
        raise RuntimeError(f"{len(failed)} benchmark jobs failed, e.g. {failed[0].result!r}")
    return results


async def throughput_once(redis_url: str, worker: WorkerUnderTest, work: str, n: int) -> Run:
    redis = Redis.from_url(redis_url)
    try:
        await redis.flushall()
        ids = await prefill(redis, worker, work, n)
        process = worker.start(redis_url)
        try:
            results = await collect_results(redis, ids, process, worker.deserializer())
            cpu_s = process.cpu_s()
        finally:
            process.stop()
    finally:
        await redis.aclose()
    return Run(
        jobs=n,
        spawned_at=process.spawned_at,
        first_start=min(r.start_time for r in results).timestamp(),
        last_finish=max(r.finish_time for r in results).timestamp(),
        cpu_s=cpu_s,
    )


def jobs_per_run(sizes: Sizes, worker: WorkerUnderTest, work: str) -> int:
    if worker is not wut.ARQ_DEFAULTS:
        return sizes.jobs
    # arq's defaults manage ~250 no-op or ~20 I/O jobs/s: a reference row, not a contender
    return max(sizes.jobs // (20 if work == "noop" else 100), 100)


async def bench_throughput(redis_url: str, sizes: Sizes) -> list[Section]:
    rates = Section("Worker throughput")
    overall = Section("Worker spawn to done, CPU per job, start-up")
    for work, label in WORKLOADS.items():
        for round_no in range(sizes.runs):
            shift = round_no % len(CONTENDERS)
            for worker in CONTENDERS[shift:] + CONTENDERS[:shift]:
                n = jobs_per_run(sizes, worker, work)
                run = await throughput_once(redis_url, worker, work, n)
                progress(
                    f"worker {label} round {round_no + 1}/{sizes.runs} {worker.name}: {run.rate:,.0f} jobs/s, "
                    f"{run.cpu_ms_per_job:.2f} ms CPU/job, start-up {run.startup_s:.2f} s"
                )
                note = f"{n:,} jobs per run"
                case = f"{work}: {worker.name}"
                rates.figure(case, f"{label} jobs/s", note=note).runs.append(run.rate)
                overall.figure(f"{case}, spawn to done", "jobs/s", note=note).runs.append(
                    run.spawn_to_done_rate
                )
                overall.figure(f"{case}, worker CPU per job", "ms").runs.append(run.cpu_ms_per_job)
                overall.figure(f"{case}, spawn to first job", "s").runs.append(run.startup_s)

    for work in WORKLOADS:
        for jobfleet, arq, loop in PAIRS:
            target = 1.5
            rates.ratio(
                f"{work}: jobfleet / tuned arq, {loop}",
                rates.figure(f"{work}: {jobfleet.name}", ""),
                rates.figure(f"{work}: {arq.name}", ""),
                at_least=target,
            )
            overall.ratio(
                f"{work}: jobfleet / tuned arq, {loop}, spawn to done",
                overall.figure(f"{work}: {jobfleet.name}, spawn to done", ""),
                overall.figure(f"{work}: {arq.name}, spawn to done", ""),
                at_least=target,
            )
            overall.ratio(
                f"{work}: CPU per job, tuned arq / jobfleet, {loop} (higher is better for jobfleet)",
                overall.figure(f"{work}: {arq.name}, worker CPU per job", ""),
                overall.figure(f"{work}: {jobfleet.name}, worker CPU per job", ""),
            )
        rates.ratio(
            f"{work}: jobfleet (uvloop) / arq defaults",
            rates.figure(f"{work}: {wut.JOBFLEET_UVLOOP.name}", "").median,
            rates.figure(f"{work}: {wut.ARQ_DEFAULTS.name}", "").median,
        )
    best = rates.figure(f"noop: {wut.JOBFLEET_UVLOOP.name}", "").median
    for peer, quoted in QUOTED_PEERS.items():
        rates.ratio(f"noop: jobfleet (uvloop) / {peer}, quoted {quoted:,.0f}/s", best, quoted)
    for worker, label in (
        (wut.JOBFLEET_UVLOOP, ""),
        (wut.JOBFLEET_ASYNCIO, ""),
        (wut.ARQ_UVLOOP, " (for comparison)"),
    ):
        startup = overall.figure(f"noop: {worker.name}, spawn to first job", "")
        overall.check_figure(f"{worker.name}: spawn to first job{label}", startup, "s", under=0.5)
    rates.notes += [
        "Each worker is its own process on one private redis-server; the queue is filled first and the rate is "
        "jobs / (last finish - first start) from the results the worker stored. Rounds alternate: each round runs "
        "every contender once, in an order rotated from the round before. The jobfleet worker is "
        "`python -m cli worker --queue default --no-scheduler --concurrency 100` with "
        "`JOBFLEET_WORKER_POLL_DELAY_S=0.01`, JSON log lines (to a file), failure record, history, stats and "
        "heartbeat on; the asyncio rows start it through `ops.bench.launch`, which hides uvloop from the CLI.",
        "Bare arq: `ops/bench/arq_worker.py`, `max_jobs=100, poll_delay=0.01`, orjson serializer; it configures "
        "no logging, so it writes no log line (jobfleet writes one JSON line per job). "
        "arq with its defaults is a reference row only, run with fewer jobs (it manages ~250 no-op or ~20 I/O "
        "jobs/s, so 20,000 jobs would take a quarter of an hour).",
        "taskiq and dramatiq: the figures quoted in issue 8, not measured here (taskiq-redis needs redis-py 8, "
        "which arq's pin excludes from the project's environment).",
    ]
    overall.notes += [
        "Spawn to done: jobs / (last finish - the moment the process was spawned), so start-up counts. "
        "CPU per job: the worker process's user + system CPU seconds (from /proc, start-up included) / jobs. "
        "Spawn to first job: from spawning the process to the first job's start, with the queue already full.",
    ]
    return [rates, overall]

"""A jobfleet worker's resident memory over a long stream of no-op jobs: it must stay flat."""

import asyncio
import time

from redis.asyncio import Redis

from ops.bench import workers_under_test as wut
from ops.bench.report import Section
from ops.bench.throughput import STALL_S, Sizes, collect_results, prefill, progress

CHUNK = 10_000


async def memory(redis_url: str, n: int) -> dict[str, float]:
    """RSS of one jobfleet worker at start, after a warm-up tenth of the jobs, half-way and at the end."""
    redis = Redis.from_url(redis_url)
    worker = wut.JOBFLEET_UVLOOP
    rss: dict[str, float] = {}
    marks = {n // 10: "after warm-up (10%)", n // 2: "half-way"}
    try:
        await redis.flushall()
        process = worker.start(redis_url)
        try:
            first = await prefill(redis, worker, "noop", 1)
            await collect_results(redis, first, process, worker.deserializer())
            rss["start (after 1 job)"] = process.rss_mib()
            fed, backlog, moved_at = 0, 0, time.monotonic()
            # keep the backlog bounded: feed more only when the worker has caught up; every wait is
            # bounded, so a worker that stops taking jobs fails the run instead of stalling it
            while True:
                process.check_alive()
                left = await redis.zcard(worker.queue)
                if left != backlog:
                    backlog, moved_at = left, time.monotonic()
                elif time.monotonic() - moved_at > STALL_S:
                    raise TimeoutError(f"the worker took no job for {STALL_S} s with {left} queued")
                if fed >= n and not left:
                    break
                if fed < n and left < CHUNK:
                    size = min(CHUNK, n - fed)
                    await prefill(redis, worker, "noop", size)
                    fed += size
                    for mark, label in marks.items():
                        if fed - size < mark <= fed:
                            rss[label] = process.rss_mib()
                            progress(f"memory: {fed:,} of {n:,} jobs fed, RSS {rss[label]:.1f} MiB")
                else:
                    await asyncio.sleep(0.05)
            await asyncio.sleep(1)
            rss["end"] = process.rss_mib()
        finally:
            process.stop()
    finally:
        await redis.flushall()
        await redis.aclose()
    return rss


async def bench_memory(redis_url: str, sizes: Sizes) -> Section:
    section = Section("Worker memory")
    rss = await memory(redis_url, sizes.memory_jobs)
    for label, mib in rss.items():
        section.figure(f"RSS {label}", "MiB", note=f"{sizes.memory_jobs:,} no-op jobs").runs.append(mib)
    section.ratio("RSS end / after warm-up", rss["end"], rss["after warm-up (10%)"], under=1.1)
    section.notes.append(
        "One jobfleet worker (uvloop, concurrency 100) fed in chunks of 10,000 jobs; RSS from /proc. One run: "
        "it measures growth over a long stream, not speed."
    )
    return section

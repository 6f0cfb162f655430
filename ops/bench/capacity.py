"""How many workers one Redis carries, and what a durable (WAIT) enqueue costs.

Scaling: 1, 2 and 4 jobfleet worker processes drain the same prefilled queue of no-op jobs on a
private Redis; besides jobs/s, Redis's own CPU time (INFO cpu) per job tells how many jobs/s one
Redis core could serve, whatever this 2-core machine's workers manage.

Durable enqueue: single enqueues through the producer against a private master with one replica,
plain and with ``durable_replicas=1`` (WAIT on the same connection), in alternating order.
"""

import asyncio
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

from redis.asyncio import Redis

from jobfleet.producer import Producer
from ops.bench import throughput
from ops.bench import workers_under_test as wut
from ops.bench.redis_server import free_port, private_redis
from ops.bench.report import Section

PROCESSES = (1, 2, 4)


async def _redis_cpu_s(redis: Redis) -> float:
    info = await redis.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


async def scaling_once(redis_url: str, processes: int, jobs: int) -> tuple[float, float]:
    """(jobs/s from first start to last finish, Redis CPU ms per job) for ``processes`` workers."""
    worker = wut.JOBFLEET_UVLOOP
    redis = Redis.from_url(redis_url)
    try:
        await redis.flushall()
        ids = await throughput.prefill(redis, worker, "noop", jobs)
        cpu_before = await _redis_cpu_s(redis)
        started = [worker.start(redis_url) for _ in range(processes)]
        try:
            results = await throughput.collect_results(redis, ids, started[0], worker.deserializer())
        finally:
            for process in started:
                process.stop()
        cpu_s = await _redis_cpu_s(redis) - cpu_before
    finally:
        await redis.aclose()
    span_s = (max(r.finish_time for r in results) - min(r.start_time for r in results)).total_seconds()
    return jobs / span_s, cpu_s * 1000 / jobs


async def bench_scaling(redis_url: str, jobs: int, runs: int) -> Section:
    section = Section("Worker processes on one Redis (no-op jobs, jobfleet on uvloop)")
    orders = [PROCESSES if run % 2 == 0 else tuple(reversed(PROCESSES)) for run in range(runs)]
    for order in orders:
        for n in order:
            rate, cpu_ms = await scaling_once(redis_url, n, jobs)
            section.figure(f"{n} worker process(es): jobs/s", "jobs/s").runs.append(rate)
            section.figure(f"{n} worker process(es): Redis CPU per job", "ms").runs.append(cpu_ms)
    one = section.figure("1 worker process(es): jobs/s", "jobs/s")
    for n in PROCESSES[1:]:
        section.ratio(
            f"{n} processes / 1 process, jobs/s",
            section.figure(f"{n} worker process(es): jobs/s", "jobs/s"),
            one,
        )
    cpu_ms = section.figure("4 worker process(es): Redis CPU per job", "ms").median
    section.notes.append(
        f"Redis spent {cpu_ms:.3f} ms of CPU per job with 4 processes: one Redis core would carry about "
        f"{1000 / cpu_ms:,.0f} no-op jobs/s, about {1000 / cpu_ms / one.median:.0f} times what one worker "
        "process drained here on its own."
    )
    return section


@contextmanager
def replicated_redis() -> Iterator[str]:
    """A private master with one replica (both unpersisted); yields the master's URL."""
    with private_redis() as master_url:
        master_port = int(master_url.rsplit(":", 1)[1].split("/")[0])
        port = free_port()
        workdir = tempfile.mkdtemp(prefix="jf_bench_replica_")
        replica = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", workdir, "--replicaof", "127.0.0.1", str(master_port), "--loglevel", "warning",
            ],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            yield master_url
        finally:
            replica.terminate()
            replica.wait(10)
            shutil.rmtree(workdir, ignore_errors=True)


async def _wait_for_replica(url: str, timeout_s: float = 30) -> None:
    redis = Redis.from_url(url)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            replica = (await redis.info("replication")).get("slave0") or {}
            if replica.get("state") == "online":
                return
            await asyncio.sleep(0.1)
        raise RuntimeError("the benchmark's replica did not connect")
    finally:
        await redis.aclose()


async def enqueue_rate(url: str, durable: bool, n: int) -> float:
    producer = Producer.from_url(url, durable_replicas=1 if durable else 0, durable_timeout_s=5)
    try:
        await producer.redis.flushall()
        started = time.perf_counter()
        for i in range(n):
            await producer.enqueue("fleet.noop", key=f"e{i}")
        return n / (time.perf_counter() - started)
    finally:
        await producer.close()


async def bench_durable(n: int, runs: int) -> Section:
    section = Section(
        "Durable enqueue (WAIT for one replica), single enqueues, master + 1 replica on loopback"
    )
    with replicated_redis() as url:
        await _wait_for_replica(url)
        for run in range(runs):
            for durable in (False, True) if run % 2 == 0 else (True, False):
                case = "durable (WAIT 1)" if durable else "plain"
                section.figure(f"enqueue/s, {case}", "jobs/s").runs.append(
                    await enqueue_rate(url, durable, n)
                )
    section.ratio(
        "durable / plain enqueue/s",
        section.figure("enqueue/s, durable (WAIT 1)", "jobs/s"),
        section.figure("enqueue/s, plain", "jobs/s"),
    )
    return section

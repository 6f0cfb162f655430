"""Where a jobfleet worker's time goes on no-op jobs: py-spy samples, summed by component.

``python -m ops.bench.profile [--jobs 30000] [--loop uvloop] [--out FILE]`` fills a private Redis
with no-op jobs, runs one jobfleet worker on them under ``py-spy record`` and prints the share of
samples (inclusive) spent in each component, plus the hottest leaf functions.
"""

import argparse
import asyncio
import collections
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from redis.asyncio import Redis

from ops.bench import workers_under_test as wut
from ops.bench.redis_server import private_redis
from ops.bench.throughput import prefill

# A frame matching the pattern counts the sample for the component (first match per component).
COMPONENTS = {
    "arq: poll, claim, bookkeeping (Redis round trips)": ("arq/worker.py",),
    "arq: start_jobs (WATCH/MULTI claim per job)": ("start_jobs (arq/worker.py",),
    "arq: finish_job (result write, delete job, in-progress)": ("finish_job (arq/worker.py",),
    "redis-py: commands and pipelines": ("redis/asyncio/",),
    "jobfleet runner (JobRunner.run, whole)": ("run (workers/runner.py",),
    "payload validation (pydantic)": ("model_validate", "pydantic"),
    "structlog: bind + JSON log line": ("structlog/",),
    "stats: started/ended counters": ("workers/stats.py",),
    "serialization (orjson via wire)": ("jobfleet/wire.py", "serialize_result", "deserialize_job"),
    "asyncio.timeout": ("timeouts.py",),
    "event loop / selectors": ("base_events.py", "selector_events.py", "uvloop"),
}


def summarize(raw: Path, top: int = 25) -> str:
    totals: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = stack.split(";")
        leaves[frames[-1]] += n
        for name, patterns in COMPONENTS.items():
            if any(p in frame for frame in frames for p in patterns):
                totals[name] += n
    lines = [f"{samples} samples", "", "| component (inclusive) | share |", "| --- | --- |"]
    lines += [f"| {name} | {totals[name] / samples:.1%} |" for name in COMPONENTS]
    lines += ["", "| hottest leaf frames | share |", "| --- | --- |"]
    lines += [f"| `{frame}` | {n / samples:.1%} |" for frame, n in leaves.most_common(top)]
    return "\n".join(lines)


async def record(redis_url: str, jobs: int, worker: wut.WorkerUnderTest, raw: Path, spy_path: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        await redis.flushall()
        await prefill(redis, worker, "noop", jobs)
        process = worker.start(redis_url)
        try:
            await asyncio.sleep(1.5)  # imports done; the worker is taking jobs
            spy = await asyncio.create_subprocess_exec(
                spy_path, "record", "-p", str(process.pid), "-f", "raw", "-o", str(raw), "-r", "250",
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            # results of fleet.noop are kept 60 s only, and a sampled run can outlast that: wait for
            # the queue and the in-progress keys to drain instead
            while await redis.zcard(worker.queue) or [k async for k in redis.scan_iter("arq:in-progress:*")]:
                process.check_alive()
                await asyncio.sleep(0.2)
            spy.send_signal(2)
            await spy.wait()
        finally:
            process.stop()
    finally:
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m ops.bench.profile", description=__doc__)
    parser.add_argument("--jobs", type=int, default=30_000)
    parser.add_argument("--worker", choices=("jobfleet", "arq"), default="jobfleet")
    parser.add_argument("--out", type=Path, help="also keep py-spy's raw (collapsed) stacks here")
    args = parser.parse_args()
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if spy is None:
        raise SystemExit("py-spy is not installed: pip install py-spy")
    worker = wut.JOBFLEET_UVLOOP if args.worker == "jobfleet" else wut.ARQ_UVLOOP
    raw = args.out or Path(tempfile.mkdtemp(prefix="jf_bench_profile_")) / "stacks.txt"
    with private_redis() as url:
        asyncio.run(record(url, args.jobs, worker, raw, spy))
    print(summarize(raw))


if __name__ == "__main__":
    main()

"""``python -m ops.bench [--quick | --tiny] [--only worker,sweep,purge,outbox,lifecycle,learners] [--runs N] [--out FILE]``"""

import argparse
import asyncio
import sys
import time
from pathlib import Path

from ops.bench import machine
from ops.bench.redis_server import private_redis, server_version
from ops.bench.report import Section, markdown
from ops.bench.throughput import Sizes

BENCHMARKS = ("worker", "sweep", "purge", "outbox", "lifecycle", "learners")
WORKER_SIZES = {
    "full": Sizes(jobs=10_000, latency_s=10, enqueue=10_000, memory_jobs=1_000_000, runs=3),
    "quick": Sizes(jobs=3_000, latency_s=3, enqueue=3_000, memory_jobs=50_000, runs=3),
    "tiny": Sizes(jobs=200, latency_s=0.5, enqueue=200, memory_jobs=2_000, runs=1),
}
DEFAULT_OUT = Path(__file__).resolve().parent / "RESULTS.md"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ops.bench", description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--quick", dest="size", action="store_const", const="quick", help="small sizes (~3 min)"
    )
    size.add_argument("--tiny", dest="size", action="store_const", const="tiny", help="smoke sizes (seconds)")
    parser.set_defaults(size="full")
    parser.add_argument(
        "--only", default=",".join(BENCHMARKS), help=f"comma-separated: {', '.join(BENCHMARKS)}"
    )
    parser.add_argument("--runs", type=int, help="runs per contender (median reported)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Markdown file to write")
    parser.add_argument(
        "--pg", default="postgresql://postgres@127.0.0.1:5432/postgres", help="PostgreSQL admin DSN"
    )
    parser.add_argument("--mysql", default="mysql://root@127.0.0.1:3306/", help="MariaDB/MySQL DSN")
    args = parser.parse_args(argv)
    args.only = [b.strip() for b in args.only.split(",") if b.strip()]
    unknown = set(args.only) - set(BENCHMARKS)
    if unknown:
        parser.error(
            f"unknown benchmark(s) {', '.join(sorted(unknown))}; choose from {', '.join(BENCHMARKS)}"
        )
    return args


async def run(args: argparse.Namespace) -> tuple[list[Section], dict[str, str]]:
    sections: list[Section] = []
    servers: dict[str, str] = {}
    if "worker" in args.only:
        from ops.bench.throughput import bench_workers

        sizes = WORKER_SIZES[args.size]
        if args.runs:
            sizes = Sizes(**{**sizes.__dict__, "runs": args.runs})
        with private_redis() as url:
            servers["Redis"] = f"{server_version(url)} (private redis-server, no persistence)"
            sections += await bench_workers(url, sizes)
    if "sweep" in args.only:
        from ops.bench.sweep import bench_sweep

        section, servers["PostgreSQL"] = await bench_sweep(args.pg, args.size, args.runs)
        sections.append(section)
    if "purge" in args.only:
        from ops.bench.purge import bench_purge

        section, servers["MariaDB/MySQL"] = await bench_purge(args.mysql, args.size, args.runs)
        sections.append(section)
    if "outbox" in args.only:
        from ops.bench.outbox import bench_outbox

        with private_redis() as url:
            servers.setdefault("Redis", f"{server_version(url)} (private redis-server, no persistence)")
            section, servers["PostgreSQL"] = await bench_outbox(args.pg, url, args.size, args.runs)
        sections.append(section)
    if "lifecycle" in args.only:
        from ops.bench.lifecycle import bench_lifecycle

        section, servers["PostgreSQL"] = await bench_lifecycle(args.pg, args.size, args.runs)
        sections.append(section)
    if "learners" in args.only:
        from ops.bench.learners import bench_learners

        section, servers["MariaDB/MySQL"] = await bench_learners(args.mysql, args.size, args.runs)
        sections.append(section)
    return sections, servers


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    started = time.monotonic()
    sections, servers = asyncio.run(run(args))
    command = "python -m ops.bench" + {"full": "", "quick": " --quick", "tiny": " --tiny"}[args.size]
    if args.only != list(BENCHMARKS):
        command += f" --only {','.join(args.only)}"
    text = markdown(
        sections, machine.describe(servers), command=command, elapsed_s=time.monotonic() - started
    )
    args.out.write_text(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

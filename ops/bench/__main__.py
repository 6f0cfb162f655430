"""``python -m ops.bench [--quick | --tiny] [--only worker,sweep,...,learners] [--runs N] [--out FILE]``

Without options: every benchmark at full size, written to ops/bench/RESULTS.md, and the table of
ratios the README quotes printed at the end. --quick and --tiny are smoke runs: they write to a
temporary file unless --out is given, and their figures are marked as not to be quoted.
"""

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

from ops.bench import machine
from ops.bench.redis_server import private_redis, server_version
from ops.bench.report import Section, markdown, ratio_table
from ops.bench.throughput import Sizes, progress
from workers.logging import configure

BENCHMARKS = ("worker", "sweep", "purge", "outbox", "lifecycle", "capacity", "tracing", "learners")
WORKER_SIZES = {
    "full": Sizes(jobs=20_000, latency_s=10, enqueue=10_000, memory_jobs=300_000, runs=3),
    "quick": Sizes(jobs=3_000, latency_s=3, enqueue=3_000, memory_jobs=50_000, runs=3),
    "tiny": Sizes(jobs=200, latency_s=0.5, enqueue=200, memory_jobs=2_000, runs=1),
}
DEFAULT_OUT = Path(__file__).resolve().parent / "RESULTS.md"
# Far above what each takes at full size here (about 15, 15 and 80 minutes): a section that
# stalls fails the run with its name rather than hang it.
SECTION_LIMIT_S = {
    "worker": 3600,
    "sweep": 3600,
    "purge": 4 * 3600,
    "outbox": 3600,
    "lifecycle": 3600,
    "capacity": 3600,
    "tracing": 3600,
    "learners": 2 * 3600,  # building 20,000,000 events, then two contenders a run
}
README = Path(__file__).resolve().parents[2] / "README.md"
TABLE_START, TABLE_END = "<!-- bench:table -->", "<!-- /bench:table -->"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ops.bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--quick", dest="size", action="store_const", const="quick", help="smoke run at small sizes (~10 min)"
    )
    size.add_argument("--tiny", dest="size", action="store_const", const="tiny", help="smoke run (seconds)")
    parser.set_defaults(size="full")
    parser.add_argument(
        "--only", default=",".join(BENCHMARKS), help=f"comma-separated: {', '.join(BENCHMARKS)}"
    )
    parser.add_argument("--runs", type=int, help="runs per contender (median and min-max reported)")
    parser.add_argument(
        "--out",
        type=Path,
        help="Markdown file to write (default: ops/bench/RESULTS.md for a complete full run)",
    )
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
    if args.runs is not None and args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.out is None:
        # only a complete full run may replace the published figures
        complete = args.size == "full" and set(args.only) == set(BENCHMARKS)
        args.out = DEFAULT_OUT if complete else Path(tempfile.gettempdir()) / f"jobfleet-bench-{args.size}.md"
    return args


@asynccontextmanager
async def section_limit(name: str) -> AsyncIterator[None]:
    limit = asyncio.timeout(SECTION_LIMIT_S[name])
    try:
        async with limit:
            yield
    except TimeoutError:
        if not limit.expired():
            raise  # a benchmark's own bounded wait, with its own message
        raise SystemExit(
            f"the {name} benchmark did not finish within {SECTION_LIMIT_S[name] / 60:.0f} minutes; "
            "its last progress line above shows where it stopped"
        ) from None


async def run(args: argparse.Namespace) -> tuple[list[Section], dict[str, str]]:
    sections: list[Section] = []
    servers: dict[str, str] = {}
    if "worker" in args.only:
        from ops.bench.latency import bench_enqueue, bench_latency
        from ops.bench.memory import bench_memory
        from ops.bench.throughput import bench_throughput

        sizes = WORKER_SIZES[args.size]
        if args.runs:
            sizes = Sizes(**{**sizes.__dict__, "runs": args.runs})
        with private_redis() as url:
            servers["Redis"] = f"{server_version(url)} (private redis-server, no persistence)"
            async with section_limit("worker"):
                sections += await bench_throughput(url, sizes)
                sections.append(await bench_latency(url, sizes))
                sections.append(await bench_enqueue(url, sizes))
                sections.append(await bench_memory(url, sizes))
        progress("worker benchmarks done")
    if "sweep" in args.only:
        from ops.bench.sweep import bench_sweep

        progress("sweep benchmark starting")
        async with section_limit("sweep"):
            swept, servers["PostgreSQL"] = await bench_sweep(args.pg, args.size, args.runs)
        sections += swept
        progress("sweep benchmark done")
    if "purge" in args.only:
        from ops.bench.purge import bench_purge

        progress("purge benchmark starting")
        async with section_limit("purge"):
            section, servers["MariaDB/MySQL"] = await bench_purge(args.mysql, args.size, args.runs)
        sections.append(section)
        progress("purge benchmark done")
    if "outbox" in args.only:
        from ops.bench.outbox import bench_outbox

        progress("outbox benchmark starting")
        with private_redis() as url:
            servers.setdefault("Redis", f"{server_version(url)} (private redis-server, no persistence)")
            async with section_limit("outbox"):
                section, servers["PostgreSQL"] = await bench_outbox(args.pg, url, args.size, args.runs)
        sections.append(section)
        progress("outbox benchmark done")
    if "lifecycle" in args.only:
        from ops.bench.lifecycle import bench_lifecycle

        async with section_limit("lifecycle"):
            section, servers["PostgreSQL"] = await bench_lifecycle(args.pg, args.size, args.runs)
        sections.append(section)
        progress("lifecycle benchmark done")
    if "capacity" in args.only:
        from ops.bench.capacity import bench_durable, bench_scaling

        sizes = WORKER_SIZES[args.size]
        runs = args.runs or sizes.runs
        progress("capacity benchmarks starting")
        async with section_limit("capacity"):
            with private_redis() as url:
                sections.append(await bench_scaling(url, sizes.jobs, runs))
            sections.append(await bench_durable(sizes.enqueue, runs))
        progress("capacity benchmarks done")
    if "tracing" in args.only:
        from ops.bench.tracing import bench_tracing

        sizes = WORKER_SIZES[args.size]
        progress("tracing benchmark starting")
        async with section_limit("tracing"):
            with private_redis() as url:
                sections.append(await bench_tracing(url, sizes.jobs, args.runs or sizes.runs))
        progress("tracing benchmark done")
    if "learners" in args.only:
        from ops.bench.learners import bench_learners

        progress("learner erasure benchmark starting")
        async with section_limit("learners"):
            section, servers["MariaDB/MySQL"] = await bench_learners(args.mysql, args.size, args.runs)
        sections.append(section)
        progress("learner erasure benchmark done")
    return sections, servers


def update_readme(readme: Path, table: str) -> None:
    """Put the table between the README's markers, so that it always shows one whole full run."""
    text = readme.read_text()
    start, end = text.find(TABLE_START), text.find(TABLE_END)
    if start < 0 or end < start:
        progress(f"{readme} has no {TABLE_START} ... {TABLE_END} block: paste the table by hand")
        return
    readme.write_text(text[: start + len(TABLE_START)] + "\n" + table + "\n" + text[end:])


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    # the jobs run in this process (sweep, purge) log through structlog: warnings only, on stderr,
    # so that stdout carries the table alone
    configure("WARNING", "console", stderr=True)
    started = time.monotonic()
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    measured = machine.commit()
    sections, servers = asyncio.run(run(args))
    command = "python -m ops.bench" + {"full": "", "quick": " --quick", "tiny": " --tiny"}[args.size]
    if args.only != list(BENCHMARKS):
        command += f" --only {','.join(args.only)}"
    if args.runs:
        command += f" --runs {args.runs}"
    facts = {"commit": measured, **machine.describe(servers)}
    smoke = args.size != "full"
    text = markdown(
        sections, facts, command=command, elapsed_s=time.monotonic() - started, date=date, smoke=smoke
    )
    args.out.write_text(text)
    # what the README's Benchmarks section takes, ready to paste
    summary = [
        f"Figures of `{command}` at commit {measured}, on {date} ({facts['nproc']} cores, {facts['CPU']}, {facts['memory']}, "
        f"Python {facts['Python']}); medians of the runs, min-max of the run-by-run ratios; "
        "details in `ops/bench/RESULTS.md`:",
        "",
        *ratio_table(sections),
    ]
    if smoke:
        summary.insert(0, "**Smoke run: not to be quoted.**\n")
    elif args.out == DEFAULT_OUT:
        update_readme(README, "\n".join(summary))
    sys.stdout.write("\n".join(summary) + "\n")
    progress(f"wrote {args.out} in {(time.monotonic() - started) / 60:.1f} minutes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

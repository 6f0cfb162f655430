"""``python -m ops.bench.sweep_statements [JOB] [--due N] [--total N]``

Where one run of a sweep spends its time, statement by statement: builds the sweep benchmark's
data set for JOB (credits.expire unless named) in throwaway databases, runs the one-transaction
reference on one copy and the job once, in this process, on another with a timer around every
statement it sends (client side, so the round trip counts), and prints each kind of statement: how
many ran, their total time and share of the run. What is left of the run's wall time is Python and
waiting between statements. Nothing in it is a test.
"""

import argparse
import asyncio
import time
from collections import defaultdict
from typing import Any

from sqlalchemy import event

from jobfleet.payloads import Sweep
from jobs.deps import Deps
from ops.bench.sweep import JOBS, Databases, DataSet, job_settings, run_reference
from ops.bench.throughput import progress
from workers.logging import configure

SHAPE_CHARS = 110  # enough of a statement to tell the kinds apart


class StatementTimes:
    """Total time and count per kind of statement, kept by the engine's cursor events."""

    def __init__(self) -> None:
        self.by_shape: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])

    def before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        conn.info.setdefault("jf_started", []).append(time.perf_counter())

    def after(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        took = time.perf_counter() - conn.info["jf_started"].pop()
        entry = self.by_shape[" ".join(statement.split())[:SHAPE_CHARS]]
        entry[0] += 1
        entry[1] += took


async def timed_run(dsn: str, job: str) -> tuple[float, StatementTimes, dict[str, int]]:
    deps = Deps.from_settings(job_settings(dsn))
    times = StatementTimes()
    engine = deps.pinteach.sync_engine
    try:
        async with deps.pinteach.connect() as conn:  # connected before the clock starts
            await conn.exec_driver_sql("SELECT 1")
        event.listen(engine, "before_cursor_execute", times.before)
        event.listen(engine, "after_cursor_execute", times.after)
        start = time.perf_counter()
        counts = await JOBS[job].run(deps, Sweep())
        return time.perf_counter() - start, times, counts
    finally:
        await deps.close()


def report(job: str, reference_s: float, wall_s: float, times: StatementTimes, counts: dict[str, int]) -> str:
    in_sql = sum(t for _, t in times.by_shape.values())
    statements = sum(int(n) for n, _ in times.by_shape.values())
    lines = [
        f"{job}: {wall_s:.2f} s ({wall_s / reference_s:.2f}x the one-transaction reference's {reference_s:.2f} s); "
        f"{statements:,} statements took {in_sql:.2f} s, the rest ({wall_s - in_sql:.2f} s) is Python and "
        f"waiting between them; outcome {counts}",
        "   count   total s  share  statement",
    ]
    for shape, (n, took) in sorted(times.by_shape.items(), key=lambda kv: -kv[1][1]):
        lines.append(f"  {int(n):6,}  {took:8.2f}  {took / wall_s:5.0%}  {shape}")
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    data = DataSet(args.job, args.due, args.total)
    async with Databases(args.pg) as dbs:
        progress(f"building {data.label} for {args.job}")
        template = await dbs.template(data, "statements")
        reference = await run_reference(dbs.admin, await dbs.copy(template), JOBS[args.job].reference)
        progress(f"reference: {reference.wall_s:.2f} s; now the job, each statement timed")
        wall, times, counts = await timed_run(await dbs.copy(template), args.job)
    print(report(args.job, reference.wall_s, wall, times, counts))


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ops.bench.sweep_statements",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("job", nargs="?", default="credits.expire", choices=sorted(JOBS))
    parser.add_argument("--due", type=int, default=100_000, help="due rows (default 100,000)")
    parser.add_argument("--total", type=int, default=1_000_000, help="rows in all (default 1,000,000)")
    parser.add_argument(
        "--pg", default="postgresql://postgres@127.0.0.1:5432/postgres", help="PostgreSQL admin DSN"
    )
    args = parser.parse_args(argv)
    if not 0 < args.due <= args.total:
        parser.error("--due must be at least 1 and at most --total")
    return args


if __name__ == "__main__":
    configure("WARNING", "console", stderr=True)  # the job's own lines would drown the table
    asyncio.run(main(parse()))

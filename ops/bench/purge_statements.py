"""``python -m ops.bench.purge_statements [--rows N] [--target-ms MS --pause S] [--pt]``

Where a purge's longest statements come from, statement by statement: builds the purge
benchmark's events table (half of it expired), turns on MariaDB's slow log for every statement with
the engine's counters (``log_slow_verbosity = engine``: pages read from disk and the time spent
reading them), runs ``telemetry.purge`` once (and pt-archiver once with ``--pt``) with the inserter
alongside, and prints for each the statements' median, p99 and longest, and the longest ones with
their rows and pages read. MariaDB only (MySQL 8 has no engine counters in its slow log), on this
machine (the log is read from the server's data directory); it changes the server's slow-log
settings while it runs and puts them back. Nothing in it is a test.
"""

import argparse
import asyncio
import re
import secrets
import shutil
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from db.engines import pickatale_engine
from db.schema import create_pickatale
from ops.bench import purge
from ops.bench.throughput import progress

SLOW_LOG_SETTINGS = (
    "slow_query_log",
    "slow_query_log_file",
    "long_query_time",
    "log_slow_verbosity",
    "log_output",
)
FIELDS = re.compile(
    r"Query_time: ([\d.]+).*?Rows_affected: (\d+).*?Pages_read: (\d+).*?Pages_read_time: ([\d.]+)", re.S
)


@dataclass(frozen=True)
class Statement:
    ms: float
    rows: int
    pages_read: int
    read_ms: float


def deletes(log: str, prefix: str) -> list[Statement]:
    """The benchmark's DELETE statements in a slow log with the engine's counters."""
    found = []
    for entry in re.split(r"(?m)^# User@Host", log):
        if "DELETE" not in entry or prefix not in entry:
            continue
        if match := FIELDS.search(entry):
            ms, rows, pages, read_ms = match.groups()
            found.append(Statement(float(ms) * 1000, int(rows), int(pages), float(read_ms)))
    return found


def report(name: str, statements: list[Statement]) -> str:
    if not statements:
        return f"{name}: no DELETE statement in the slow log"
    times = sorted(s.ms for s in statements)
    lines = [
        f"{name}: {len(times):,} DELETE statements, median {statistics.median(times):.0f} ms, "
        f"p99 {times[int(len(times) * 0.99)]:.0f} ms, longest {times[-1]:.0f} ms, "
        f"{sum(t > 500 for t in times)} over 500 ms; median {statistics.median(s.rows for s in statements):,.0f} "
        f"rows and {statistics.median(s.pages_read for s in statements):,.0f} pages read from disk",
        "  the longest: ms, rows, pages read from disk, ms reading them",
    ]
    lines += [
        f"  {s.ms:6.0f} {s.rows:7,} {s.pages_read:7,} {s.read_ms:6.0f}"
        for s in sorted(statements, key=lambda s: -s.ms)[:8]
    ]
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    prefix = f"jf_bench_{secrets.token_hex(3)}_"
    engine = pickatale_engine(args.mysql, pool_size=4)
    events = purge.Events(engine, prefix)
    version = (await events.sql("SELECT version()"))[0][0]
    if "mariadb" not in version.lower():
        raise SystemExit(f"MariaDB only: {version} has no engine counters in its slow log")
    saved = {name: (await events.sql(f"SELECT @@GLOBAL.{name}"))[0][0] for name in SLOW_LOG_SETTINGS}
    datadir = Path((await events.sql("SELECT @@datadir"))[0][0])
    policies = Path(tempfile.mkdtemp(prefix="jf_bench_policy_"))
    changes = {"chunk_target_ms": args.target_ms, "pause_between_chunks_s": args.pause}
    policy = purge.policy_file(policies, **{k: v for k, v in changes.items() if v is not None})
    try:
        await create_pickatale(engine, prefix)
        progress(f"building {args.rows:,} events")
        cutoff = await events.build(args.rows, args.rows // 2, mariadb=True)
        contenders = {"telemetry.purge": lambda: purge.jobfleet_purge(args.mysql, prefix, policy)}
        if args.pt:
            contenders["pt-archiver"] = lambda: purge.pt_archiver(args.mysql, events, cutoff)
        for i, (name, contender) in enumerate(contenders.items()):
            if i:
                await events.reset(args.rows)
            log = datadir / f"{prefix}slow.log"
            await events.sql(f"SET GLOBAL slow_query_log_file = '{log}'")
            await events.sql("SET GLOBAL long_query_time = 0")
            await events.sql("SET GLOBAL log_slow_verbosity = 'engine'")
            await events.sql("SET GLOBAL log_output = 'FILE'")
            await events.sql("SET GLOBAL slow_query_log = ON")
            progress(f"{name}: running with the slow log on")
            try:
                outcome = await purge.measure(events, cutoff, True, contender)
            finally:
                await events.sql("SET GLOBAL slow_query_log = OFF")
            try:
                statements = deletes(log.read_text(), prefix)
            except OSError as e:
                raise SystemExit(
                    f"cannot read the server's slow log {log} ({e}): run this on the server"
                ) from None
            finally:
                log.unlink(missing_ok=True)
            print(
                f"{report(name, statements)}\n  {outcome.rows / outcome.seconds:,.0f} rows/s (the slow log costs some)\n"
            )
    finally:
        for name, value in saved.items():
            quoted = f"'{value}'" if isinstance(value, str) else value
            await events.sql(f"SET GLOBAL {name} = {quoted}")
        await events.drop()
        await engine.dispose()
        shutil.rmtree(policies, ignore_errors=True)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ops.bench.purge_statements",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rows", type=int, default=4_000_000, help="events in the table, half expired")
    parser.add_argument("--target-ms", type=float, help="chunk_target_ms instead of the shipped policy's")
    parser.add_argument("--pause", type=float, help="pause_between_chunks_s instead of the shipped policy's")
    parser.add_argument("--pt", action="store_true", help="run pt-archiver too, as the benchmark runs it")
    parser.add_argument(
        "--mysql", default="mysql://root@127.0.0.1:3306/", help="MariaDB DSN (a local server)"
    )
    args = parser.parse_args(argv)
    if args.rows < 2:
        parser.error("--rows must be at least 2")
    return args


if __name__ == "__main__":
    asyncio.run(main(parse()))

"""telemetry.purge against pt-archiver and one plain DELETE, on the same events, in the same run.

The events table is filled once (half of it past the 90-day policy, in id order as a live table
would be), the expired half is copied aside, and after each contender the table is put back from
that copy. Contenders take turns: each round runs every one of them once, in an order rotated from
the round before. While each runs, an inserter writes 200 events/s (its longest wait is reported),
a watcher samples the processlist every 20 ms for the longest DELETE statement, and the InnoDB
history list length is read before and after. Databases are named jf_bench_* and dropped.

Contenders: telemetry.purge as shipped (schedules/retention.toml's policy, its pause and its
chunks sized by time), the same without the pause, pt-archiver with the options its documentation
recommends for a purge (``--purge --primary-key-only --bulk-delete --limit``), and one DELETE.
"""

import asyncio
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from db.engines import pickatale_engine
from db.pickatale import DATABASES
from db.schema import create_pickatale
from jobfleet.payloads import RetentionRun
from jobfleet.settings import SCHEDULES_DIR, load_settings
from jobs.deps import Deps
from jobs.retention import purge
from jobs.retention.policies import load_policies
from ops.bench.report import Section
from ops.bench.throughput import progress

PT_LIMIT, MAX_AGE_DAYS, INSERTS_PER_S = 5000, 90, 200
CONTENDER_LIMIT_S, MIN_ROWS_PER_S = 300, 200
SIZES = {"full": (4_000_000, 2_000_000, 3), "quick": (400_000, 200_000, 3), "tiny": (10_000, 5_000, 1)}
SHIPPED = SCHEDULES_DIR / "retention.toml"
POLICY = "telemetry.events"
EVENT_COLUMNS = "event_id, learner_id, session_id, event_type, book_id, page_number, time_on_page_ms, client_ts, created_at"


@dataclass
class Outcome:
    seconds: float
    rows: int
    longest_statement_s: float
    insert_max_wait_ms: float
    history_before: int
    history_after: int


class Events:
    def __init__(self, engine: AsyncEngine, prefix: str) -> None:
        self.engine = engine
        self.prefix = prefix
        self.table = f"`{prefix}telemetry`.`events`"
        self.work = f"`{prefix}work`"

    async def sql(self, statement: str, **params: object) -> list:
        async with self.engine.begin() as conn:
            result = await conn.execute(text(statement), params)
            return result.all() if result.returns_rows else []

    async def build(self, total: int, expired: int, mariadb: bool) -> str:
        """Fill the table; return the cut-off every contender uses (UTC, as the table holds)."""
        await self.sql(f"CREATE DATABASE {self.work}")
        numbers = await self.numbers(total, mariadb)
        fresh = total - expired
        # expired: 400 to 100 days old; fresh: 89 days old to now. Ids follow time, as in a live table.
        await self.sql(
            f"INSERT INTO {self.table} ({EVENT_COLUMNS}) "
            "SELECT concat('00000000-0000-4000-8000-', lpad(hex(n), 12, '0')), "
            "concat('learner-', n % 5000), concat('session-', n % 200000), "
            "elt(1 + n % 3, 'page_turned', 'word_tapped', 'book_opened'), 'book-1', n % 40, 4000, n, "
            f"CASE WHEN n < {expired} "
            f"THEN utc_timestamp() - INTERVAL 400 DAY + INTERVAL floor(n * 25920000 / {expired}) SECOND "
            f"ELSE utc_timestamp() - INTERVAL 89 DAY + INTERVAL floor((n - {expired}) * 7689600 / {fresh}) SECOND END "
            f"FROM ({numbers}) numbers"
        )
        (cutoff,) = (await self.sql(f"SELECT utc_timestamp() - INTERVAL {MAX_AGE_DAYS} DAY"))[0]
        await self.sql(
            f"CREATE TABLE {self.work}.expired AS SELECT * FROM {self.table} WHERE created_at < :c", c=cutoff
        )
        await self.sql(f"ANALYZE TABLE {self.table}")
        return cutoff.strftime("%Y-%m-%d %H:%M:%S")

    async def numbers(self, total: int, mariadb: bool) -> str:
        """A SELECT of n = 0 .. total-1 in order, for INSERT ... SELECT (the fast way to fill a table)."""
        if mariadb:
            return f"SELECT seq AS n FROM {self.work}.seq_0_to_{total - 1}"
        # MySQL 8: no sequence engine; ten digits cross-joined
        await self.sql(f"CREATE TABLE IF NOT EXISTS {self.work}.digits (d INT PRIMARY KEY)")
        await self.sql(
            f"INSERT IGNORE INTO {self.work}.digits VALUES (0),(1),(2),(3),(4),(5),(6),(7),(8),(9)"
        )
        places = len(str(total - 1))
        joins = ", ".join(f"{self.work}.digits d{i}" for i in range(places))
        number = " + ".join(f"d{i}.d * {10**i}" for i in range(places))
        return f"SELECT {number} AS n FROM {joins} HAVING n < {total} ORDER BY n"

    async def reset(self, total: int) -> None:
        await self.sql(f"DELETE FROM {self.table} WHERE id > :n", n=total)  # the inserter's rows
        await self.sql(f"INSERT IGNORE INTO {self.table} SELECT * FROM {self.work}.expired")

    async def count_expired(self, cutoff: str) -> int:
        return (await self.sql(f"SELECT count(*) FROM {self.table} WHERE created_at < :c", c=cutoff))[0][0]

    async def history_length(self) -> int:
        status = (await self.sql("SHOW ENGINE INNODB STATUS"))[0][2]
        match = re.search(r"History list length (\d+)", status)
        return int(match.group(1)) if match else -1

    async def drop(self) -> None:
        for name in (*DATABASES, "work"):
            await self.sql(f"DROP DATABASE IF EXISTS `{self.prefix}{name}`")


async def insert_steadily(events: Events, stop: asyncio.Event) -> float:
    """Insert INSERTS_PER_S fresh events a second, one statement each; return the longest wait (ms)."""
    longest, i, start = 0.0, 0, time.monotonic()
    async with events.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        while not stop.is_set():
            delay = start + i / INSERTS_PER_S - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            t = time.perf_counter()
            await conn.execute(
                text(
                    f"INSERT INTO {events.table} ({EVENT_COLUMNS}) VALUES (uuid(), 'learner-live', 'session-live', "
                    "'page_turned', 'book-1', 1, 4000, 0, utc_timestamp())"
                )
            )
            longest = max(longest, (time.perf_counter() - t) * 1000)
            i += 1
    return longest


async def watch_statements(events: Events, stop: asyncio.Event, mariadb: bool) -> float:
    """Sample the processlist; the longest a single DELETE statement was seen running (s)."""
    elapsed = "TIME_MS / 1000" if mariadb else "TIME"
    longest = 0.0
    async with events.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        while not stop.is_set():
            try:
                rows = await conn.execute(
                    text(
                        f"SELECT max({elapsed}) FROM information_schema.PROCESSLIST "
                        "WHERE COMMAND = 'Query' AND INFO LIKE 'DELETE%' AND INFO LIKE :ours"
                    ),
                    # this benchmark's statements only, not those of anything else on the server
                    {"ours": f"%{events.prefix}%"},
                )
                longest = max(longest, float(rows.scalar() or 0))
            except DBAPIError as e:
                # the server's own temporary table for the processlist can fail on a busy machine:
                # one sample lost, not the run
                progress(f"purge: one processlist sample failed ({str(e.orig).splitlines()[0]})")
            await asyncio.sleep(0.02)
    return longest


async def measure(events: Events, cutoff: str, mariadb: bool, contender) -> Outcome:
    before = await events.count_expired(cutoff)
    history_before = await events.history_length()
    stop = asyncio.Event()
    inserter = asyncio.create_task(insert_steadily(events, stop))
    watcher = asyncio.create_task(watch_statements(events, stop, mariadb))
    await asyncio.sleep(0.5)  # the inserter runs before, during and after
    start = time.perf_counter()
    try:
        # bounded: a contender that stops deleting fails the run instead of stalling it
        async with asyncio.timeout(CONTENDER_LIMIT_S + before / MIN_ROWS_PER_S):
            await contender()
        seconds = time.perf_counter() - start
    finally:
        await asyncio.sleep(0.5)
        stop.set()
        insert_max, longest = await inserter, await watcher
    left = await events.count_expired(cutoff)
    if left:
        raise RuntimeError(f"{left} expired events were left behind")
    return Outcome(seconds, before, longest, insert_max, history_before, await events.history_length())


async def single_delete(events: Events, cutoff: str) -> None:
    await events.sql(f"DELETE FROM {events.table} WHERE created_at < :c", c=cutoff)


async def pt_archiver(mysql_dsn: str, events: Events, cutoff: str) -> None:
    url = urlsplit(mysql_dsn)
    source = f"h={url.hostname or '127.0.0.1'},P={url.port or 3306},u={url.username or 'root'}"
    source += f",p={url.password}" if url.password else ""
    source += f",D={events.prefix}telemetry,t=events"
    command = [
        "pt-archiver",
        "--source",
        source,
        "--purge",
        "--primary-key-only",  # the documentation's advice for purges: fetch the key, not whole rows
        "--bulk-delete",  # one DELETE per chunk (and a commit each), not one per row
        "--limit",
        str(PT_LIMIT),
        "--where",
        f"created_at < '{cutoff}'",
        "--no-check-charset",
    ]
    process = await asyncio.create_subprocess_exec(*command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, _ = await process.communicate()
    if process.returncode:
        raise RuntimeError(f"pt-archiver failed ({process.returncode}): {out.decode()[-1000:]}")


def policy_file(directory: Path, name: str = "retention.toml", **changes: object) -> Path:
    """The shipped telemetry.events policy, as it is or with some of its fields changed."""
    shipped = load_policies(SHIPPED)[POLICY]
    fields = shipped.model_dump(exclude={"name"}, exclude_defaults=False, exclude_none=True)
    fields.update(changes)
    lines = [f'["{POLICY}"]'] + [f"{key} = {_toml(value)}" for key, value in fields.items()]
    path = directory / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return str(value)


async def jobfleet_purge(mysql_dsn: str, prefix: str, policies: Path) -> None:
    settings = load_settings(
        pickatale_dsn=mysql_dsn,
        pickatale_db_prefix=prefix,
        retention_file=policies,
        retention_budget_s=7200,
        log_level="WARNING",
    )
    deps = Deps.from_settings(settings)
    try:
        summary = await purge.run(deps, RetentionRun(policy=POLICY))
    finally:
        await deps.close()
    if summary["remaining_expired"]:
        raise RuntimeError(f"telemetry.purge left {summary['remaining_expired']} expired events")


async def bench_purge(mysql_dsn: str, size: str, runs: int | None) -> tuple[Section, str]:
    total, expired, default_runs = SIZES[size]
    runs = runs or default_runs
    section = Section("Purge versus pt-archiver and the single DELETE (telemetry.events)")
    prefix = f"jf_bench_{secrets.token_hex(3)}_"
    engine = pickatale_engine(mysql_dsn, pool_size=4)
    events = Events(engine, prefix)
    policy_dir = Path(tempfile.mkdtemp(prefix="jf_bench_policy_"))
    shipped = policy_file(policy_dir)
    no_pause = policy_file(policy_dir, "retention-no-pause.toml", pause_between_chunks_s=0)
    policy = load_policies(shipped)[POLICY]
    have_pt = shutil.which("pt-archiver") is not None
    names = {
        "shipped": "telemetry.purge as shipped",
        "no_pause": "telemetry.purge without its pause",
        "pt": f"pt-archiver --purge --primary-key-only --bulk-delete --limit {PT_LIMIT}",
        "delete": "single DELETE ... WHERE created_at < cutoff",
    }
    outcomes: dict[str, list[Outcome]] = {}
    try:
        version = (await events.sql("SELECT version()"))[0][0]
        mariadb = "mariadb" in version.lower()
        await create_pickatale(engine, prefix)
        start = time.perf_counter()
        cutoff = await events.build(total, expired, mariadb)
        section.notes.append(
            f"{total:,} events built in {time.perf_counter() - start:.0f} s; cut-off {cutoff} UTC."
        )
        contenders = {
            "shipped": lambda: jobfleet_purge(mysql_dsn, prefix, shipped),
            "no_pause": lambda: jobfleet_purge(mysql_dsn, prefix, no_pause),
            "pt": lambda: pt_archiver(mysql_dsn, events, cutoff),
            "delete": lambda: single_delete(events, cutoff),
        }
        if not have_pt:
            del contenders["pt"]
            section.notes.append(
                "**pt-archiver is not installed** (Debian: `apt-get install percona-toolkit`): not measured."
            )
        order, first = list(contenders), True
        for round_no in range(runs):
            shift = round_no % len(order)
            for key in order[shift:] + order[:shift]:
                if not first:
                    await events.reset(total)
                first = False
                outcome = await measure(events, cutoff, mariadb, contenders[key])
                outcomes.setdefault(key, []).append(outcome)
                progress(
                    f"purge round {round_no + 1}/{runs} {names[key]}: {outcome.rows / outcome.seconds:,.0f} rows/s, "
                    f"longest statement {outcome.longest_statement_s * 1000:,.0f} ms"
                )
    finally:
        try:
            await events.drop()
        finally:
            await engine.dispose()
            shutil.rmtree(policy_dir, ignore_errors=True)

    for key, results in outcomes.items():
        name = names[key]
        section.figure(f"{name}: rows/s", "rows/s", note=f"{expired:,} of {total:,}").runs += [
            o.rows / o.seconds for o in results
        ]
        section.figure(f"{name}: longest statement", "ms").runs += [
            o.longest_statement_s * 1000 for o in results
        ]
        section.figure(f"{name}: inserter's longest wait", "ms").runs += [
            o.insert_max_wait_ms for o in results
        ]
        section.figure(f"{name}: history list length before", "").runs += [o.history_before for o in results]
        section.figure(f"{name}: history list length after", "").runs += [o.history_after for o in results]

    def rate(key: str):
        return section.figure(f"{names[key]}: rows/s", "")

    for key in ("shipped", "no_pause"):
        if have_pt:
            section.ratio(f"rows/s: {names[key]} / pt-archiver", rate(key), rate("pt"), at_least=1.2)
        section.ratio(
            f"rows/s: {names[key]} / single DELETE",
            rate(key),
            rate("delete"),
            at_least=0.8 if key == "shipped" else None,
        )
    for key in ("shipped", "no_pause"):
        longest = section.figure(f"{names[key]}: longest statement", "")
        section.check_figure(f"{names[key]}: longest statement", longest, "ms", under=500)
    for key in outcomes:
        wait = section.figure(f"{names[key]}: inserter's longest wait", "")
        section.check_figure(
            f"inserter's longest wait during {names[key].split(' --')[0]}", wait, "ms", under=100
        )
    section.notes += [
        "Each contender starts from the same rows (the expired half is put back from a copy in between). "
        "The longest statement is sampled from the processlist every 20 ms (MariaDB's TIME_MS; on MySQL 8 "
        "the processlist has whole seconds only: use performance_schema.events_statements_history_long there).",
        "telemetry.purge runs in this process (`run(deps, RetentionRun(policy='telemetry.events'))`) with the "
        f"shipped policy: chunks sized for {policy.chunk_target_ms:g} ms, at most {policy.chunk_size:,} rows, "
        f"{policy.pause_between_chunks_s:g} s between chunks; the run without its pause changes only that.",
    ]
    return section, version

"""learners.erase against one plain DELETE: one learner's telemetry among many, while inserts go on.

The events table is filled once (INSERT ... SELECT from a sequence), the learner's events spread
evenly over the whole id range as a child reading for months would leave them, and copied aside;
before each contender after the first they are put back from that copy, with a fresh student row and
erasure request. While each contender runs, the purge benchmark's inserter writes 200 events/s of
other learners (its longest wait is reported) and its watcher samples the processlist for the
longest DELETE. After each, the other learners' rows are counted: the erasure must delete nothing else.
"""

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import text

from db.engines import pickatale_engine
from db.pickatale import class_memberships, classes, learner_erasure_requests, teacher_portal_students
from db.schema import create_pickatale
from jobfleet.payloads import LearnerErasureRef
from jobfleet.settings import Settings, load_settings
from jobs.deps import Deps
from jobs.learners import erase
from ops.bench.purge import EVENT_COLUMNS, Events, insert_steadily, watch_statements
from ops.bench.report import Section

# the erasure runs as shipped: time-sized chunks of at most CHUNK rows aimed at TARGET_MS, PAUSE_S between
CHUNK = Settings.model_fields["learner_erase_chunk_size"].default
TARGET_MS = Settings.model_fields["learner_erase_chunk_target_ms"].default
PAUSE_S = Settings.model_fields["learner_erase_pause_s"].default
# events in all, the learner's among them, default runs per contender
SIZES = {"full": (20_000_000, 1_000_000, 1), "quick": (2_000_000, 100_000, 2), "tiny": (40_000, 4_000, 1)}
LEARNER = "5e1f0000-0000-4000-8000-00000000e7a5"


@dataclass
class Outcome:
    seconds: float
    cpu_s: float
    rows: int
    longest_statement_s: float
    insert_max_wait_ms: float


class Telemetry(Events):
    """The purge benchmark's events table, filled with one heavy learner among 5,000 others."""

    async def build(self, total: int, learner_rows: int, mariadb: bool) -> None:
        await self.sql(f"CREATE DATABASE {self.work}")
        numbers = await self.numbers(total, mariadb)
        step = total // learner_rows
        # the last 80 days, ids following time; every step-th event is the learner's
        await self.sql(
            f"INSERT INTO {self.table} ({EVENT_COLUMNS}) "
            "SELECT concat('00000000-0000-4000-8000-', lpad(hex(n), 12, '0')), "
            f"CASE WHEN n % {step} = 0 THEN '{LEARNER}' ELSE concat('learner-', n % 5000) END, "
            "concat('session-', n % 200000), "
            "elt(1 + n % 3, 'page_turned', 'word_tapped', 'book_opened'), 'book-1', n % 40, 4000, n, "
            f"utc_timestamp() - INTERVAL 80 DAY + INTERVAL floor(n * 6912000 / {total}) SECOND "
            f"FROM ({numbers}) numbers"
        )
        await self.sql(
            f"CREATE TABLE {self.work}.learner AS SELECT * FROM {self.table} WHERE learner_id = :l", l=LEARNER
        )
        await self.sql(f"ANALYZE TABLE {self.table}")

    async def restore(self) -> None:
        await self.sql(f"INSERT IGNORE INTO {self.table} SELECT * FROM {self.work}.learner")

    async def count(self, where: str, **params: object) -> int:
        return (await self.sql(f"SELECT count(*) FROM {self.table} WHERE {where}", **params))[0][0]


async def new_request(dsn: str, prefix: str, run: int) -> int:
    """A student row under the learner's uuid, in a class, and a pending request due yesterday."""
    engine = pickatale_engine(dsn, prefix=prefix, pool_size=1)
    try:
        async with engine.begin() as conn:
            student = (
                await conn.execute(
                    teacher_portal_students.insert().values(
                        uuid=LEARNER, name="Bench Learner", username=f"bench-{run}", pin_hash="x"
                    )
                )
            ).inserted_primary_key[0]
            class_id = (
                await conn.execute(
                    classes.insert().values(class_name="Bench", year_level=3, teacher_id=1, state="active")
                )
            ).inserted_primary_key[0]
            await conn.execute(
                class_memberships.insert().values(
                    student_id=student, class_id=class_id, enrolled_at=text("utc_timestamp()")
                )
            )
            return (
                await conn.execute(
                    learner_erasure_requests.insert().values(
                        learner_id=LEARNER,
                        requested_by=1,
                        requested_at=text("utc_timestamp() - INTERVAL 31 DAY"),
                        due_at=text("utc_timestamp() - INTERVAL 1 DAY"),
                    )
                )
            ).inserted_primary_key[0]
    finally:
        await engine.dispose()


async def jobfleet_erase(dsn: str, prefix: str, request_id: int) -> None:
    settings = load_settings(
        pickatale_dsn=dsn,
        pickatale_db_prefix=prefix,
        learner_erase_budget_s=7200,
        log_level="WARNING",
    )
    deps = Deps.from_settings(settings)
    try:
        summary = await erase.run(deps, LearnerErasureRef(request_id=request_id))
    finally:
        await deps.close()
    if summary["erased"] != 1:
        raise RuntimeError(f"learners.erase did not complete: {summary}")


async def measure(
    events: Telemetry, mariadb: bool, total: int, contender: Callable[[], Awaitable[None]]
) -> Outcome:
    rows = await events.count("learner_id = :l", l=LEARNER)
    others = await events.count("id <= :n AND learner_id <> :l", n=total, l=LEARNER)
    stop = asyncio.Event()
    inserter = asyncio.create_task(insert_steadily(events, stop))
    watcher = asyncio.create_task(watch_statements(events, stop, mariadb))
    await asyncio.sleep(0.5)  # the inserter runs before, during and after
    start, cpu = time.perf_counter(), time.process_time()
    try:
        await contender()
        seconds, cpu_s = time.perf_counter() - start, time.process_time() - cpu
    finally:
        await asyncio.sleep(0.5)
        stop.set()
        insert_max, longest = await inserter, await watcher
    if left := await events.count("learner_id = :l", l=LEARNER):
        raise RuntimeError(f"{left} of the learner's events were left behind")
    if (kept := await events.count("id <= :n AND learner_id <> :l", n=total, l=LEARNER)) != others:
        raise RuntimeError(f"other learners' events went from {others} to {kept}")
    return Outcome(seconds, cpu_s, rows, longest, insert_max)


async def contender_for(
    jobfleet: bool, events: Telemetry, dsn: str, prefix: str, run: int
) -> Callable[[], Awaitable[object]]:
    if jobfleet:
        request_id = await new_request(dsn, prefix, run)

        async def erase_learner() -> None:
            await jobfleet_erase(dsn, prefix, request_id)

        return erase_learner

    async def delete_all() -> None:
        await events.sql(f"DELETE FROM {events.table} WHERE learner_id = :l", l=LEARNER)

    return delete_all


async def bench_learners(dsn: str, size: str, runs: int | None) -> tuple[Section, str]:
    total, learner_rows, default_runs = SIZES[size]
    runs = runs or default_runs
    section = Section("Learner erasure versus one DELETE (telemetry.events of one learner)")
    prefix = f"jf_bench_{secrets.token_hex(3)}_"
    engine = pickatale_engine(dsn, pool_size=4)
    events = Telemetry(engine, prefix)
    outcomes: dict[str, list[Outcome]] = {}
    ours = f"learners.erase as shipped (chunks aimed at {TARGET_MS:g} ms, at most {CHUNK:,}, {PAUSE_S:g} s pause)"
    single = "single DELETE ... WHERE learner_id = ?"
    try:
        version = (await events.sql("SELECT version()"))[0][0]
        mariadb = "mariadb" in version.lower()
        await create_pickatale(engine, prefix)
        start = time.perf_counter()
        await events.build(total, learner_rows, mariadb)
        section.notes.append(
            f"{total:,} events ({learner_rows:,} of the learner) built in {time.perf_counter() - start:.0f} s."
        )
        plan = await events.sql(
            f"EXPLAIN DELETE FROM {events.table} WHERE id > 0 AND id <= {total // 2} AND learner_id = '{LEARNER}'"
        )
        section.notes.append(f"Plan of a chunk's DELETE: `{' | '.join(str(c) for c in plan[0])}`.")
        done = 0
        for _ in range(runs):
            for name in (ours, single):
                if done:
                    await events.restore()
                done += 1
                contender = await contender_for(name == ours, events, dsn, prefix, done)
                outcomes.setdefault(name, []).append(await measure(events, mariadb, total, contender))
    finally:
        try:
            await events.drop()
        finally:
            await engine.dispose()

    for name, results in outcomes.items():
        section.figure(f"{name}: rows/s", "rows/s", note=f"{learner_rows:,} of {total:,}").runs += [
            o.rows / o.seconds for o in results
        ]
        section.figure(f"{name}: wall time", "s").runs += [o.seconds for o in results]
        section.figure(
            f"{name}: CPU time of this process", "s", note="inserter and watcher included"
        ).runs += [o.cpu_s for o in results]
        section.figure(f"{name}: longest statement", "ms").runs += [
            o.longest_statement_s * 1000 for o in results
        ]
        section.figure(f"{name}: inserter's longest wait", "ms").runs += [
            o.insert_max_wait_ms for o in results
        ]
    section.ratio(
        "rows/s: learners.erase / single DELETE",
        section.figure(f"{ours}: rows/s", ""),
        section.figure(f"{single}: rows/s", ""),
    )
    section.check_figure(
        "learners.erase longest statement", section.figure(f"{ours}: longest statement", ""), "ms", under=500
    )
    section.check_figure(
        "inserter's longest wait during learners.erase",
        section.figure(f"{ours}: inserter's longest wait", ""),
        "ms",
        under=100,
    )
    section.notes += [
        "learners.erase runs in this process (`erase.run(deps, LearnerErasureRef(request_id=...))`) with the "
        "shipped settings, pauses included. Its time includes the other steps (login sessions, memberships, "
        "readings, memories, "
        "the student row), which are small here. The single DELETE is the reference for rate only: it holds "
        "its locks for the whole statement.",
        "Nothing else deleted: the other learners' events are counted before and after each contender.",
    ]
    return section, version

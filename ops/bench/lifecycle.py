"""lifecycle.detect: a run with nothing new since the last one, against a day's changes and a full run.

The data set (``lifecycle_sql``) is built once, set-based, and a full run of the job settles it
(every milestone, streak, gap and churn written) before the clock starts. Then, alternating, each
run uses the same database: "no mark" is the full run the job falls back to without one; "nothing
new" the run after it, with the mark it left; "a day since the last run" one whose mark is moved a
day back (a day's sessions and threshold crossings to look at). The job runs in
this process (``run(deps, LifecycleRun())``); the mark is handed in as the runtime would.
"""

import time
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy.dialects import postgresql

from db.engines import pinteach_engine
from db.schema import create_pinteach
from jobfleet.payloads import LifecycleRun
from jobfleet.settings import load_settings
from jobs.deps import Deps
from jobs.lifecycle import detect
from jobs.lifecycle.progress import Progress
from ops.bench.lifecycle_sql import COUNTS, DATA
from ops.bench.report import Section
from ops.bench.sweep import Databases, _dsn

SIZES = {  # students (10 sessions each), runs
    "full": (100_000, 3),
    "quick": (20_000, 3),
    "tiny": (1_000, 1),
}
PER_STUDENT = 10
TARGET_S = 1.0


class Mark:
    """The runtime's mark store, held in memory: the benchmark measures the job, not Redis."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    async def get(self, name: str) -> dict[str, Any] | None:
        return self.progress.doc()

    async def set(self, name: str, value: dict[str, Any]) -> None:
        self.progress = Progress.from_doc(value)


async def timed(deps: Deps, mark: Mark) -> tuple[float, float, dict[str, int]]:
    wall, cpu = time.perf_counter(), time.process_time()
    counts = await detect.run(deps.with_marks(mark), LifecycleRun())
    return time.perf_counter() - wall, time.process_time() - cpu, counts


async def plan(dsn: str, since: datetime, now: datetime) -> str:
    query = detect.candidates_query(
        [14, 21, 60, 90], since=since, now=now, lookback=timedelta(days=7)
    ).compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {query}")
        return "\n".join(r[0] for r in rows)
    finally:
        await conn.close()


async def bench_lifecycle(admin_dsn: str, size: str, runs: int | None) -> tuple[Section, str]:
    students, default_runs = SIZES[size]
    runs = runs or default_runs
    section = Section("lifecycle.detect: a run with nothing new (PostgreSQL)")
    async with Databases(admin_dsn) as dbs:
        version = await dbs.admin.fetchval("SHOW server_version")
        name = dbs.prefix + "lifecycle"
        await dbs.admin.execute(f'CREATE DATABASE "{name}"')
        dbs.names.append(name)
        dsn = _dsn(admin_dsn, name)
        engine = pinteach_engine(dsn, pool_size=1)
        try:
            await create_pinteach(engine)
        finally:
            await engine.dispose()
        start = time.perf_counter()
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(DATA.format(students=students, per_student=PER_STUDENT))
            await conn.execute("VACUUM ANALYZE")
        finally:
            await conn.close()
        built_s = time.perf_counter() - start
        settings = load_settings(pinteach_dsn=dsn, lifecycle_budget_s=3600, log_level="WARNING")
        deps = Deps.from_settings(settings)
        try:
            settle_s, _, settled = await timed(deps, Mark(Progress()))
            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute("VACUUM ANALYZE")
                counts = {r[0]: r[1] for r in await conn.fetch(COUNTS)}
                now = await conn.fetchval("SELECT now()")
            finally:
                await conn.close()
            checked: dict[str, int] = {}
            last = Mark(Progress())  # the mark each run leaves, as the runtime keeps it
            for _ in range(runs):
                for case in (
                    "no mark: every student",
                    "nothing new since the last run",
                    "a day since the last run",
                ):
                    if case.startswith("no mark"):
                        last.progress = Progress()
                    elif case.startswith("a day"):
                        last.progress = Progress(since=last.progress.since - timedelta(days=1))
                    wall, cpu, result = await timed(deps, last)
                    section.figure(f"{case}, wall", "s").runs.append(wall)
                    section.figure(f"{case}, CPU of this process", "s").runs.append(cpu)
                    checked[case] = result["students_checked"]
        finally:
            await deps.close()
        appendix = await plan(dsn, datetime.now(now.tzinfo) - timedelta(seconds=1), datetime.now(now.tzinfo))
    nothing = section.figure("nothing new since the last run, wall", "s")
    day = section.figure("a day since the last run, wall", "s")
    full = section.figure("no mark: every student, wall", "s")
    section.check_figure("nothing new since the last run (wall)", nothing, "s", under=TARGET_S)
    section.ratio("no mark / nothing new (time)", full, nothing)
    section.ratio("a day since / nothing new (time)", day, nothing)
    for case, n in checked.items():
        section.figure(f"{case}: students looked at", "students").runs.append(n)
    section.notes += [
        f"Data: {counts['sessions']:,} sessions ({counts['sessions ahead']:,} ahead), {counts['students']:,} "
        f"students, built in {built_s:.0f} s; the settling full run took {settle_s:.1f} s and wrote "
        f"{sum(v for k, v in settled.items() if k not in ('students_checked', 'complete')):,} events "
        f"({counts['lifecycle events']:,} in the table).",
        "Wall time includes the job's own statements and Python; CPU is this process only (the "
        "server's work shows in wall time).",
        "The nothing-new run still reads: the sessions that ended within the lookback (7 days) or lie "
        "ahead (index range on (status, ends_at), each row's updated_at checked), and a sequential scan "
        "of enrollments, students and group seats (no timestamp index on them in the schema).",
    ]
    section.appendix = (
        "Plan of the candidate query of a nothing-new run (EXPLAIN ANALYZE, BUFFERS):\n\n```\n"
        + appendix
        + "\n```"
    )
    return section, version

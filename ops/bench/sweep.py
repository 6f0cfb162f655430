"""sessions.auto_complete against the limit: one hand-written SQL transaction doing the same writes.

Each data set is built once, set-based, into a template database; every run starts from a fresh
copy of it (CREATE DATABASE ... TEMPLATE), so every contender sees the same rows and the same
physical state. All databases are named jf_bench_* and dropped at the end.
"""

import asyncio
import secrets
import time
from dataclasses import dataclass

import asyncpg

from db.engines import pinteach_engine
from db.schema import create_pinteach
from jobfleet.payloads import Sweep
from jobfleet.settings import load_settings
from jobs.deps import Deps
from jobs.sessions import auto_complete
from ops.bench.report import Section
from ops.bench.sweep_sql import DATA, DUE_SELECT, OUTCOME, REFERENCE

GRACE_S, BATCH = 900, 500


@dataclass(frozen=True)
class DataSet:
    due: int
    total: int

    @property
    def label(self) -> str:
        return f"{self.due:,} due among {self.total:,}"

    def sql(self) -> str:
        students, groups = self.due // 10, max(self.due // 200, 1)
        other = max((self.total - students * 10 - groups) // students, 0)
        return DATA.format(students=students, other=other, groups=groups)


SIZES = {  # main data set, then the pair that shows the cost does not grow with the table
    "full": (DataSet(100_000, 1_000_000), DataSet(1_000, 1_000_000), DataSet(1_000, 10_000), 3),
    "quick": (DataSet(10_000, 100_000), DataSet(1_000, 100_000), DataSet(1_000, 10_000), 3),
    "tiny": (DataSet(1_000, 10_000), DataSet(200, 10_000), DataSet(200, 2_000), 1),
}


def _dsn(admin_dsn: str, name: str) -> str:
    return admin_dsn.rsplit("/", 1)[0] + "/" + name


class Databases:
    """Creates and copies the benchmark's databases; drops every one of them at the end."""

    def __init__(self, admin_dsn: str) -> None:
        self.admin_dsn = admin_dsn
        self.prefix = f"jf_bench_{secrets.token_hex(3)}_"
        self.names: list[str] = []

    async def __aenter__(self) -> "Databases":
        self.admin = await asyncpg.connect(self.admin_dsn)
        self.file_copy = int(await self.admin.fetchval("SHOW server_version_num")) >= 150000
        return self

    async def __aexit__(self, *exc: object) -> None:
        for name in self.names:
            await self.admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await self.admin.close()

    async def template(self, data: DataSet, key: str) -> str:
        name = self.prefix + key
        await self.admin.execute(f'CREATE DATABASE "{name}"')
        self.names.append(name)
        engine = pinteach_engine(_dsn(self.admin_dsn, name), pool_size=1)
        try:
            await create_pinteach(engine)
        finally:
            await engine.dispose()
        conn = await asyncpg.connect(_dsn(self.admin_dsn, name))
        try:
            await conn.execute(data.sql())
            await conn.execute("VACUUM ANALYZE")
        finally:
            await conn.close()
        return name

    async def copy(self, template: str) -> str:
        name = self.prefix + "run"
        await self.admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        strategy = " STRATEGY FILE_COPY" if self.file_copy else ""
        await self.admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"{strategy}')
        if name not in self.names:
            self.names.append(name)
        return _dsn(self.admin_dsn, name)


async def outcome(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        return {row[0]: int(row[1]) for row in await conn.fetch(OUTCOME)}
    finally:
        await conn.close()


async def plan(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            rows = await conn.fetch(
                "EXPLAIN (ANALYZE, BUFFERS) " + DUE_SELECT.format(grace_s=GRACE_S, limit=BATCH)
            )
            return "\n".join(r[0] for r in rows)
    finally:
        await conn.close()


async def run_reference(dsn: str) -> float:
    conn = await asyncpg.connect(dsn)
    try:
        start = time.perf_counter()
        await conn.execute(REFERENCE.format(grace_s=GRACE_S))
        return time.perf_counter() - start
    finally:
        await conn.close()


async def run_job(dsn: str, workers: int) -> float:
    settings = load_settings(
        pinteach_dsn=dsn,
        sweep_batch_size=BATCH,
        auto_complete_grace_s=GRACE_S,
        sweep_budget_s=3600,
        log_level="WARNING",
    )
    fleet = [Deps.from_settings(settings) for _ in range(workers)]
    try:
        for deps in fleet:  # connected before the clock starts, as the reference is
            async with deps.pinteach.connect() as conn:
                await conn.exec_driver_sql("SELECT 1")
        start = time.perf_counter()
        await asyncio.gather(*(auto_complete.run(deps, Sweep()) for deps in fleet))
        return time.perf_counter() - start
    finally:
        for deps in fleet:
            await deps.close()


async def bench_sweep(admin_dsn: str, size: str, runs: int | None) -> tuple[Section, str]:
    main, big, small, default_runs = SIZES[size]
    runs = runs or default_runs
    section = Section("Sweep versus the limit (sessions.auto_complete, PostgreSQL)")
    plans: dict[str, str] = {}
    mismatches: list[str] = []
    async with Databases(admin_dsn) as dbs:
        version = await dbs.admin.fetchval("SHOW server_version")
        start = time.perf_counter()
        templates = {d: await dbs.template(d, f"tpl{i}") for i, d in enumerate((main, big, small))}
        section.notes.append(
            f"Data sets built set-based (generate_series) in {time.perf_counter() - start:.0f} s."
        )
        expected: dict[DataSet, dict[str, int]] = {}
        contenders = (
            ("reference: one SQL transaction, all rows", main, lambda dsn: run_reference(dsn)),
            ("auto_complete, one worker", main, lambda dsn: run_job(dsn, 1)),
            ("auto_complete, two workers at once", main, lambda dsn: run_job(dsn, 2)),
            (f"auto_complete, {big.label}", big, lambda dsn: run_job(dsn, 1)),
            (f"auto_complete, {small.label}", small, lambda dsn: run_job(dsn, 1)),
        )
        for run in range(runs):
            for case, data, contender in contenders:
                dsn = await dbs.copy(templates[data])
                if (run == runs - 1 and case.endswith("one worker")) or (
                    data is not main and data.label not in plans
                ):
                    plans[data.label] = await plan(dsn)
                seconds = await contender(dsn)
                note = data.label if data is main else f"{BATCH}-row batches"
                section.figure(case, "s", note=note).runs.append(seconds)
                result = await outcome(dsn)
                if data is main and case.startswith("reference"):
                    expected[data] = result
                elif data is main and result != expected.get(data):
                    diff = {
                        k: (v, expected[data].get(k)) for k, v in result.items() if expected[data].get(k) != v
                    }
                    mismatches.append(f"{case}: {diff}")
    ref, one, two, on_big, on_small = (f.median for f in section.figures)
    rows = expected[main]["ledger CONSUME"]
    section.ratio("one worker / reference (time)", one, ref, under=1.15)
    section.ratio("two workers / reference (time)", two, ref, under=0.85)
    section.ratio(f"{big.label} / {small.label} (time)", on_big, on_small, under=1.5)
    section.notes += [
        f"Reference: {main.due / ref:,.0f} sessions/s ({rows:,} CONSUME rows); one worker {main.due / one:,.0f}/s; "
        f"two workers {main.due / two:,.0f}/s.",
        "Same outcome: every run of the job left the same row counts (sessions by status, participants, ledger, "
        "enrollment counters, lifecycle, audit, notifications) as the reference."
        if not mismatches
        else "**Outcome differs from the reference**: " + "; ".join(mismatches),
        f"The job runs in this process (`run(deps, Sweep())`, batches of {BATCH}, grace {GRACE_S} s); two workers "
        "are two concurrent runs on two engines in one event loop.",
    ]
    section.appendix = "Query plans of the due-row select (EXPLAIN ANALYZE, BUFFERS):\n\n" + "\n\n".join(
        f"{label}:\n\n```\n{text}\n```" for label, text in plans.items()
    )
    return section, version

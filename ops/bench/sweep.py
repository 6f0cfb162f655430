"""Sweeps against the limit: each job (sessions.auto_complete, credits.expire, messages.deliver_due)
against one hand-written SQL transaction doing the same writes for every due row at once.

Contenders run in rotating order, several rounds; each figure is wall time, with the CPU time beside
it (this process, where the job's Python runs, plus the PostgreSQL backends serving it, read from
/proc: the server is local). Each data set is built once, set-based, into a template database; every run starts from a fresh
copy of it (CREATE DATABASE ... TEMPLATE), so every contender sees the same rows and the same
physical state. All databases are named jf_bench_* and dropped at the end.
"""

import asyncio
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from db.engines import pinteach_engine
from db.schema import create_pinteach
from jobfleet.payloads import Sweep
from jobfleet.settings import Settings, load_settings
from jobs.credits import expire
from jobs.deps import Deps
from jobs.messages import deliver_due
from jobs.sessions import auto_complete
from ops.bench import sweep_references as refs
from ops.bench.report import Section
from ops.bench.sweep_sql import DATA, DUE_SELECT, OUTCOME, REFERENCE

GRACE_S = 900


@dataclass(frozen=True)
class DataSet:
    job: str
    due: int
    total: int

    @property
    def label(self) -> str:
        return f"{self.due:,} due among {self.total:,}"

    def sql(self) -> str:
        if self.job == "sessions.auto_complete":
            students, groups = self.due // 10, max(self.due // 200, 1)
            other = max((self.total - students * 10 - groups) // students, 0)
            return DATA.format(students=students, other=other, groups=groups)
        students = max(self.due // 10, 1)
        data = refs.CREDITS_DATA if self.job == "credits.expire" else refs.MESSAGES_DATA
        return data.format(students=students, due=self.due, other=self.total - self.due)


@dataclass(frozen=True)
class Job:
    """One sweep under test: its reference, what must come out the same, and its due-row select."""

    name: str
    reference: str
    outcome: str
    due_select: str
    run: Callable[[Deps, Sweep], Awaitable[dict[str, int]]]


JOBS = {
    "sessions.auto_complete": Job(
        "sessions.auto_complete",
        REFERENCE.format(grace_s=GRACE_S),
        OUTCOME,
        DUE_SELECT.format(grace_s=GRACE_S, limit="{limit}"),
        auto_complete.run,
    ),
    "credits.expire": Job(
        "credits.expire", refs.CREDITS_REFERENCE, refs.CREDITS_OUTCOME, refs.CREDITS_DUE_SELECT, expire.run
    ),
    "messages.deliver_due": Job(
        "messages.deliver_due",
        refs.MESSAGES_REFERENCE,
        refs.MESSAGES_OUTCOME,
        refs.MESSAGES_DUE_SELECT,
        deliver_due.run,
    ),
}

# per size: (due, total) of the main data set, then the pair showing that the cost follows the rows
# due, not the table, and the rounds
SIZES = {
    "full": ((100_000, 1_000_000), (1_000, 1_000_000), (1_000, 10_000), 3),
    "quick": ((10_000, 100_000), (1_000, 100_000), (1_000, 10_000), 3),
    "tiny": ((1_000, 10_000), (200, 10_000), (200, 2_000), 1),
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

    async def drop(self, names: list[str]) -> None:
        for name in names:
            await self.admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            self.names.remove(name)

    async def copy(self, template: str) -> str:
        name = self.prefix + "run"
        await self.admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        strategy = " STRATEGY FILE_COPY" if self.file_copy else ""
        await self.admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"{strategy}')
        if name not in self.names:
            self.names.append(name)
        return _dsn(self.admin_dsn, name)


async def outcome(dsn: str, sql: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        return {row[0]: int(row[1]) for row in await conn.fetch(sql)}
    finally:
        await conn.close()


async def plan(dsn: str, sql: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql)
            return "\n".join(r[0] for r in rows)
    finally:
        await conn.close()


_TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def backend_cpu_s(pids: list[int]) -> float:
    """CPU seconds (user + system) the PostgreSQL backends with these pids have used so far."""
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:  # not on this machine, or gone
            continue
        total += (int(fields[11]) + int(fields[12])) * _TICK_S
    return total


async def backends(admin: asyncpg.Connection, dsn: str) -> list[int]:
    name = dsn.rsplit("/", 1)[1]
    return [r[0] for r in await admin.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", name)]


@dataclass(frozen=True)
class Measured:
    wall_s: float
    cpu_s: float  # this process + the server's backends


async def run_reference(admin: asyncpg.Connection, dsn: str, sql: str) -> Measured:
    conn = await asyncpg.connect(dsn)
    try:
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        server, here, start = backend_cpu_s([pid]), time.process_time(), time.perf_counter()
        await conn.execute(sql)
        wall = time.perf_counter() - start
        return Measured(wall, time.process_time() - here + backend_cpu_s([pid]) - server)
    finally:
        await conn.close()


def job_settings(dsn: str) -> Settings:
    """The shipped sweep settings, on this database, with a budget no benchmark run reaches."""
    return load_settings(
        pinteach_dsn=dsn, auto_complete_grace_s=GRACE_S, sweep_budget_s=3600, log_level="WARNING"
    )


async def run_job(admin: asyncpg.Connection, dsn: str, job: Job, workers: int) -> Measured:
    fleet = [Deps.from_settings(job_settings(dsn)) for _ in range(workers)]
    try:
        for deps in fleet:  # connected before the clock starts, as the reference is
            async with deps.pinteach.connect() as conn:
                await conn.exec_driver_sql("SELECT 1")
        pids = await backends(admin, dsn)
        server, here, start = backend_cpu_s(pids), time.process_time(), time.perf_counter()
        await asyncio.gather(*(job.run(deps, Sweep()) for deps in fleet))
        wall = time.perf_counter() - start
        pids = await backends(admin, dsn)  # a pool may have opened more connections
        return Measured(wall, time.process_time() - here + backend_cpu_s(pids) - server)
    finally:
        for deps in fleet:
            await deps.close()


async def bench_sweep(admin_dsn: str, size: str, runs: int | None, jobs: list[str] | None = None):
    """One section per sweep; returns them and the server's version."""
    sections = []
    async with Databases(admin_dsn) as dbs:
        version = await dbs.admin.fetchval("SHOW server_version")
        for name in jobs or list(JOBS):
            sections.append(await bench_job(dbs, JOBS[name], size, runs))
    return sections, version


async def bench_job(dbs: Databases, job: Job, size: str, runs: int | None) -> Section:
    (due, total), big_pair, small_pair, default_runs = SIZES[size]
    main, big, small = (
        DataSet(job.name, due, total),
        DataSet(job.name, *big_pair),
        DataSet(job.name, *small_pair),
    )
    runs = runs or default_runs
    section = Section(f"Sweep versus the limit ({job.name}, PostgreSQL)")
    plans: dict[str, str] = {}
    mismatches: list[str] = []
    key = job.name.split(".")[1]
    start = time.perf_counter()
    templates = {d: await dbs.template(d, f"{key}{i}") for i, d in enumerate((main, big, small))}
    section.notes.append(
        f"Data sets built set-based (generate_series) in {time.perf_counter() - start:.0f} s."
    )
    expected: dict[str, int] = {}
    contenders = [
        (
            "reference: one SQL transaction, all rows",
            main,
            lambda dsn: run_reference(dbs.admin, dsn, job.reference),
        ),
        ("one worker", main, lambda dsn: run_job(dbs.admin, dsn, job, 1)),
        ("two workers at once", main, lambda dsn: run_job(dbs.admin, dsn, job, 2)),
        (f"one worker, {big.label}", big, lambda dsn: run_job(dbs.admin, dsn, job, 1)),
        (f"one worker, {small.label}", small, lambda dsn: run_job(dbs.admin, dsn, job, 1)),
    ]
    for run in range(runs):
        # rotate the order each round, so no contender always runs first (cold) or last
        shift = run % len(contenders)
        for case, data, contender in contenders[shift:] + contenders[:shift]:
            dsn = await dbs.copy(templates[data])
            if data.label not in plans and not case.startswith("reference"):
                plans[data.label] = await plan(dsn, job.due_select.format(limit=first_batch()))
            measured = await contender(dsn)
            section.figure(case, "s", note=data.label).runs.append(measured.wall_s)
            section.figure(f"{case}, CPU", "s CPU", note="this process + PostgreSQL backends").runs.append(
                measured.cpu_s
            )
            result = await outcome(dsn, job.outcome)
            if data is main and case.startswith("reference"):
                expected = expected or result
                if result != expected:
                    mismatches.append(f"reference runs differ: {result}")
            elif data is main and result != expected:
                diff = {k: (v, expected.get(k)) for k, v in result.items() if expected.get(k) != v}
                mismatches.append(f"{case}: {diff}")
    await dbs.drop(list(templates.values()))
    # Figures, not medians: each ratio also gets its min-max, round i against round i
    fig = {f.case: f for f in section.figures}
    ref, one, two = fig[contenders[0][0]], fig["one worker"], fig["two workers at once"]
    on_big, on_small = fig[contenders[3][0]], fig[contenders[4][0]]
    if job.name == "sessions.auto_complete":
        section.ratio("one worker / reference (time)", one, ref, under=1.10)
        section.ratio("two workers / reference (time)", two, ref, under=0.80)
    else:
        section.ratio("one worker / reference (time)", one, ref, under=1.2)
        section.ratio("two workers / reference (time)", two, ref, under=1.2)
    section.ratio(f"{big.label} / {small.label} (time)", on_big, on_small, under=1.2)
    section.ratio("one worker / reference (CPU)", fig["one worker, CPU"], fig[contenders[0][0] + ", CPU"])
    section.notes += [
        f"Reference: {main.due / ref.median:,.0f} due rows/s; one worker {main.due / one.median:,.0f}/s; "
        f"two workers {main.due / two.median:,.0f}/s.",
        "Same outcome: every run of the job left the same row counts and sums as the reference."
        if not mismatches
        else "**Outcome differs from the reference**: " + "; ".join(mismatches),
        f"The job runs in this process (`run(deps, Sweep())` with the shipped batch settings: first batch "
        f"{first_batch()}, sized by time up to the cap); two workers are two concurrent runs on two engines "
        "in one event loop. CPU: this process plus the PostgreSQL backends serving the run.",
    ]
    section.appendix = (
        f"Query plans of {job.name}'s due-row select, first batch (EXPLAIN ANALYZE, BUFFERS):\n\n"
        + "\n\n".join(f"{label}:\n\n```\n{text}\n```" for label, text in plans.items())
    )
    return section


def first_batch() -> int:
    settings = load_settings()
    return min(settings.sweep_batch_first, settings.sweep_batch_size)

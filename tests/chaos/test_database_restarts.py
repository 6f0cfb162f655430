"""Restart PostgreSQL in the middle of a sweep, and MariaDB in the middle of a purge, under a real
worker process: the job retries and finishes, and no half-done batch or chunk is ever visible.

Each test runs its own private server (tests/chaos/servers.py): the machine's shared servers carry
other test runs and are never restarted.
"""

import asyncio
import contextlib
import os
import time

import asyncpg
import pytest
from redis.asyncio import Redis
from sqlalchemy import text

from db.engines import pickatale_engine, pinteach_engine
from db.schema import create_pickatale, create_pinteach
from jobfleet.producer import Producer
from jobfleet.settings import load_settings
from jobs.deps import Deps
from ops.audit import audit_pinteach, audit_telemetry
from tests.chaos.processes import log_events, start_worker, stop_worker, wait_for_result
from tests.chaos.servers import PrivateMariaDB, PrivatePostgres
from tests.chaos.sessions_world import SEED, SNAPSHOT, half_done, progress, snapshot

SESSIONS = int(os.environ.get("JOBFLEET_CHAOS_RESTART_SESSIONS", "5000"))
EVENTS = int(os.environ.get("JOBFLEET_CHAOS_RESTART_EVENTS", "100000"))
CHUNK = 1000
PROBE_INTERVAL_S = 0.02


async def probe_until(done: asyncio.Event, probe) -> list:
    """Call ``probe`` over and over until ``done``; collect what it finds wrong. A probe that cannot
    reach the server (it is restarting) just tries again."""
    found = []
    while not done.is_set():
        with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            found += await probe()
        await asyncio.sleep(PROBE_INTERVAL_S)
    return found


# PostgreSQL -------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_postgres_restart_mid_sweep_retries_and_equals_a_clean_run(env, redis: Redis, tmp_path):
    with PrivatePostgres() as server:
        admin = await asyncpg.connect(server.admin_dsn())
        try:
            await admin.execute("CREATE DATABASE pinteach")
            dsn = server.admin_dsn("pinteach")
            engine = pinteach_engine(dsn, pool_size=1)
            await create_pinteach(engine)
            async with engine.begin() as conn:
                raw = await conn.get_raw_connection()
                await raw.driver_connection.execute(SEED.format(students=SESSIONS // 10))
            await engine.dispose()
            await admin.execute("CREATE DATABASE clean TEMPLATE pinteach")
            await run_the_restart_sweep(server, dsn, server.admin_dsn("clean"), env, redis, tmp_path)
        finally:
            await admin.close()


async def run_the_restart_sweep(server: PrivatePostgres, dsn: str, clean_dsn: str, env, redis, tmp_path):
    from jobfleet.payloads import Sweep
    from jobs.sessions import auto_complete

    # the reference: one uninterrupted sweep over a copy of the same rows
    clean = Deps.from_settings(load_settings(pinteach_dsn=clean_dsn, auto_complete_grace_s=900))
    reference = await auto_complete.run(clean, Sweep())
    await clean.close()
    total = reference["completed"] + reference["pending_review"]
    assert total == SESSIONS + 25

    log = tmp_path / "worker.log"
    worker = await start_worker(
        {
            **env,
            "JOBFLEET_PINTEACH_DSN": dsn,
            "JOBFLEET_SWEEP_BATCH_SIZE": "25",
            "JOBFLEET_LOG_LEVEL": "INFO",
        },
        log,
        "sweeps",
    )
    done = asyncio.Event()
    watcher = asyncio.create_task(probe_until(done, lambda: half_done(dsn)))
    try:
        job_id = await Producer(redis).enqueue("sessions.auto_complete", key="pg-restart")
        started = time.monotonic()
        while (before := await progress(dsn)) == 0:
            assert worker.returncode is None, log.read_text()[-3000:]
            assert time.monotonic() - started < 120, "the sweep made no progress: " + log.read_text()[-3000:]
            await asyncio.sleep(0.01)
        await asyncio.to_thread(server.restart)
        assert before < total, "the sweep finished before the restart: raise JOBFLEET_CHAOS_RESTART_SESSIONS"

        # straight after the restart, before the retry can have run: whole batches only
        assert await half_done(dsn) == []
        engine = pinteach_engine(dsn, pool_size=1)
        try:
            assert await audit_pinteach(engine) == []
        finally:
            await engine.dispose()

        result = await wait_for_result(redis, job_id, timeout_s=120)
    finally:
        done.set()
        # stop the worker first: a failing probe must not leave it running
        code = await stop_worker(worker)
        half_done_seen = await watcher
    assert code == 0

    assert result["s"] is True, result["r"]
    assert result["t"] >= 2, "the restart interrupted the first try, so the job ran again"
    retrying = [e for e in log_events(log) if e["event"] == "job_retrying"]
    assert retrying and retrying[0]["job"] == "sessions.auto_complete"
    assert half_done_seen == [], "a half-done batch was visible during the run"

    chaos, expected = await snapshot(dsn), await snapshot(clean_dsn)
    for table in SNAPSHOT:
        assert chaos[table] == expected[table], f"{table} differs from the clean run after the restart"
    engine = pinteach_engine(dsn, pool_size=1)
    try:
        assert await audit_pinteach(engine) == []
    finally:
        await engine.dispose()


# MariaDB ----------------------------------------------------------------------------------------

# Every fifth event is recent; the rest are past the 90-day policy.
SEED_EVENTS = """
INSERT INTO telemetry.events (id, event_id, learner_id, session_id, event_type, client_ts, created_at)
SELECT seq, UUID(), 'learner', 'session', 'page_turned', 0,
       IF(MOD(seq, 5) = 0, UTC_TIMESTAMP() - INTERVAL 1 DAY, UTC_TIMESTAMP() - INTERVAL 100 DAY)
FROM telemetry.seq_1_to_{n}
"""
# One statement, so one snapshot: the lowest expired id left, how many expired and recent are left.
STATE = """
SELECT min(IF(expired, id, NULL)) AS lowest, coalesce(sum(expired), 0) AS expired,
       coalesce(sum(NOT expired), 0) AS recent
FROM (SELECT id, created_at < UTC_TIMESTAMP() - INTERVAL 90 DAY AS expired FROM telemetry.events) e
"""
RETENTION = f"""
["telemetry.events"]
table = "telemetry.events"
time_columns = ["created_at"]
max_age_days = 90
chunk_size = {CHUNK}
pause_between_chunks_s = 0.02
action = "delete"
"""


def expired_between(low: int, high: int) -> int:
    """Seeded expired ids in [low, high]: every id not divisible by 5."""
    return (high - low + 1) - (high // 5 - (low - 1) // 5)


def whole_chunks_only(lowest: int | None, expired: int, recent: int) -> list[str]:
    """The purge walks ids in windows (k*CHUNK, (k+1)*CHUNK]: each committed whole or not at all, so
    what is left of the expired events is everything from a window boundary up."""
    problems = []
    if recent != EVENTS // 5:
        problems.append(f"{recent} recent events left of {EVENTS // 5}")
    if lowest is None:
        if expired:
            problems.append(f"{expired} expired events without a lowest id")
        return problems
    if (lowest - 1) % CHUNK:
        problems.append(f"the lowest expired id left, {lowest}, is inside a chunk")
    if expired != expired_between(lowest, EVENTS):
        problems.append(
            f"{expired} expired events left from id {lowest}, not {expired_between(lowest, EVENTS)}"
        )
    return problems


@pytest.mark.slow
async def test_mariadb_crash_mid_purge_retries_and_leaves_no_partial_chunk(env, redis: Redis, tmp_path):
    retention = tmp_path / "retention.toml"
    retention.write_text(RETENTION)
    with PrivateMariaDB() as server:
        engine = pickatale_engine(server.dsn, pool_size=2)
        try:
            await create_pickatale(engine)
            async with engine.begin() as conn:
                await conn.exec_driver_sql(SEED_EVENTS.format(n=EVENTS))
            await purge_through_a_crash(server, engine, env, redis, tmp_path, retention)
        finally:
            await engine.dispose()


async def purge_through_a_crash(server: PrivateMariaDB, engine, env, redis, tmp_path, retention):
    from sqlalchemy.exc import DBAPIError

    async def state() -> tuple[int | None, int, int]:
        async with engine.connect() as conn:
            row = (await conn.execute(text(STATE))).one()
            return row.lowest, int(row.expired), int(row.recent)

    async def probe() -> list[str]:
        try:
            return whole_chunks_only(*await state())
        except DBAPIError:
            return []  # the server is down or recovering: nothing to see

    log = tmp_path / "worker.log"
    worker = await start_worker(
        {
            **env,
            "JOBFLEET_PICKATALE_DSN": server.dsn,
            "JOBFLEET_PICKATALE_DB_PREFIX": "",
            "JOBFLEET_RETENTION_FILE": str(retention),
            "JOBFLEET_LOG_LEVEL": "INFO",
        },
        log,
        "sweeps",
    )
    total_expired = expired_between(1, EVENTS)
    done = asyncio.Event()
    watcher = asyncio.create_task(probe_until(done, probe))
    try:
        job_id = await Producer(redis).enqueue("telemetry.purge", key="mariadb-crash")
        started = time.monotonic()
        while (before := await state())[1] == total_expired:
            assert worker.returncode is None, log.read_text()[-3000:]
            assert time.monotonic() - started < 120, "the purge made no progress: " + log.read_text()[-3000:]
            await asyncio.sleep(0.01)
        await asyncio.to_thread(server.restart)  # kill -9, crash recovery, up again
        assert before[0] is not None, (
            "the purge finished before the crash: raise JOBFLEET_CHAOS_RESTART_EVENTS"
        )

        # straight after the crash: whole chunks only (InnoDB rolled back the one in flight)
        await engine.dispose()
        assert whole_chunks_only(*await state()) == []

        result = await wait_for_result(redis, job_id, timeout_s=120)
    finally:
        done.set()
        # stop the worker first: a failing probe must not leave it running
        code = await stop_worker(worker)
        partial_seen = await watcher
    assert code == 0

    assert result["s"] is True, result["r"]
    assert result["t"] >= 2, "the crash interrupted the first try, so the job ran again"
    assert any(e["event"] == "job_retrying" and e["job"] == "telemetry.purge" for e in log_events(log))
    assert partial_seen == [], "a partial chunk was visible during the run"

    lowest, expired, recent = await state()
    assert (lowest, expired, recent) == (None, 0, EVENTS // 5)
    summary = result["r"]
    assert summary["remaining_expired"] == 0 and summary["already_running"] == 0
    # the successful try began at a window boundary and deleted everything from there, in whole chunks
    boundaries = [b for b in range(0, EVENTS, CHUNK) if expired_between(b + 1, EVENTS) == summary["deleted"]]
    assert boundaries, f"the summary's {summary['deleted']} deleted is not a whole number of chunks"
    assert summary["chunks"] == -(-(EVENTS - boundaries[0] - 1) // CHUNK)
    assert await audit_telemetry(engine, max_age_days=90) == []


# The probes themselves: each can see what it looks for -------------------------------------------


async def test_the_half_done_probe_sees_a_session_completed_without_its_writes(settings, pg):
    async with pg.begin() as conn:
        raw = await conn.get_raw_connection()
        await raw.driver_connection.execute(SEED.format(students=5))
    assert await half_done(settings.pinteach_dsn) == []
    async with pg.begin() as conn:
        session = (
            await conn.execute(
                text(
                    "UPDATE class_sessions SET status = 'completed' WHERE id = md5('session1:1')::uuid RETURNING id"
                )
            )
        ).scalar_one()
        group = (
            await conn.execute(
                text(
                    "UPDATE class_sessions SET status = 'completed' WHERE id = md5('group1')::uuid RETURNING id"
                )
            )
        ).scalar_one()
    assert sorted(await half_done(settings.pinteach_dsn)) == sorted([session] + [group] * 4)


def test_the_chunk_probe_sees_a_partial_chunk():
    assert whole_chunks_only(1, expired_between(1, EVENTS), EVENTS // 5) == []
    assert whole_chunks_only(CHUNK + 1, expired_between(CHUNK + 1, EVENTS), EVENTS // 5) == []
    assert whole_chunks_only(None, 0, EVENTS // 5) == []
    assert whole_chunks_only(CHUNK // 2, expired_between(CHUNK // 2, EVENTS), EVENTS // 5)  # inside a chunk
    assert whole_chunks_only(CHUNK + 1, expired_between(CHUNK + 1, EVENTS) - 1, EVENTS // 5)  # a hole
    assert whole_chunks_only(CHUNK + 1, expired_between(CHUNK + 1, EVENTS), EVENTS // 5 - 1)  # a recent one

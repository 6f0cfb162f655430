"""Restart PostgreSQL in the middle of a sweep, and MariaDB in the middle of a purge, under a real
worker process: the job retries and finishes, and no half-done batch or chunk is ever visible.

Each test runs its own private server (tests/chaos/servers.py): the machine's shared servers carry
other test runs and are never restarted.
"""

import asyncio
import contextlib
import os
import re
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


# The purge's chunk statement as the server's general log has it (bound values inlined by the driver).
DELETE_WINDOW = re.compile(r"\bQuery\s+DELETE FROM \S*events WHERE \S*\.id > (\d+) AND \S*\.id <= (\d+) ")
SERVER_STARTED = " started with:\n"  # the header mariadbd writes to the general log at each start

Window = tuple[int, int]  # a chunk: the ids in (after, upto], one DELETE in one transaction


def delete_windows(general_log: str) -> list[list[Window]]:
    """The purge's chunks in the order the server received them, one list per server start. Chunk
    sizes depend on how long chunks take, so the test reads the windows the server really ran
    instead of assuming where they begin and end."""
    starts = general_log.split(SERVER_STARTED)[1:]
    return [[(int(a), int(b)) for a, b in DELETE_WINDOW.findall(part)] for part in starts]


def whole_chunks_only(lowest: int | None, expired: int, recent: int, windows: list[Window]) -> list[str]:
    """Each chunk commits whole or not at all, so what is left of the expired events is everything
    above one of the chunks' ends: no hole, no recent event gone, no chunk deleted in part."""
    problems = []
    if recent != EVENTS // 5:
        problems.append(f"{recent} recent events left of {EVENTS // 5}")
    if lowest is None:
        if expired:
            problems.append(f"{expired} expired events without a lowest id")
    elif expired != expired_between(lowest, EVENTS):
        problems.append(
            f"{expired} expired events left from id {lowest}, not {expired_between(lowest, EVENTS)}"
        )
    # the expired ids deleted so far, if they are all of those below `lowest`
    deleted = expired_between(1, EVENTS if lowest is None else lowest - 1)
    if deleted not in {expired_between(1, upto) for _, upto in [(0, 0), *windows]}:
        inside = [w for w in windows if expired_between(1, w[0]) < deleted < expired_between(1, w[1])]
        where = f"inside the chunk ({inside[0][0]}, {inside[0][1]}]" if inside else "at no chunk's end"
        problems.append(f"the lowest expired id left, {lowest}, is {where}")
    return problems


def consecutive(windows: list[Window], after: int, upto: int) -> list[str]:
    """The chunks walk (after, upto] in order, each taking up where the last one ended, none wider
    than the policy's chunk_size (a ceiling since the chunks are sized by time)."""
    problems = []
    ends = [after] + [w[1] for w in windows]
    if [w[0] for w in windows] != ends[:-1]:
        problems.append(f"the chunks do not follow each other from id {after}: {windows}")
    if ends[-1] != upto:
        problems.append(f"the chunks end at id {ends[-1]}, not {upto}")
    if wide := [w for w in windows if w[1] - w[0] > CHUNK]:
        problems.append(f"chunks wider than chunk_size {CHUNK}: {wide}")
    return problems


@pytest.mark.slow
async def test_mariadb_crash_mid_purge_retries_and_leaves_no_partial_chunk(env, redis: Redis, tmp_path):
    retention = tmp_path / "retention.toml"
    retention.write_text(RETENTION)
    with PrivateMariaDB(general_log=True) as server:
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

    async def probe() -> list[tuple[int | None, int, int]]:
        # what the run looks like from outside, checked once the chunks the server ran are known
        try:
            return [await state()]
        except DBAPIError:
            return []  # the server is down or recovering: nothing to see

    def windows() -> list[list[Window]]:
        return delete_windows(server.general_log_path.read_text(errors="replace"))

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

        # straight after the crash: whole chunks only (InnoDB rolled back the one in flight), and
        # whole chunks of the run the crash interrupted, not of a retry that may have begun since
        await engine.dispose()
        after_crash = await state()
        first_try = windows()[0]
        assert whole_chunks_only(*after_crash, first_try) == []

        result = await wait_for_result(redis, job_id, timeout_s=120)
    finally:
        done.set()
        # stop the worker first: a failing probe must not leave it running
        code = await stop_worker(worker)
        seen = await watcher
    assert code == 0

    assert result["s"] is True, result["r"]
    assert result["t"] >= 2, "the crash interrupted the first try, so the job ran again"
    assert any(e["event"] == "job_retrying" and e["job"] == "telemetry.purge" for e in log_events(log))

    before_crash, *after_restart = windows()
    assert len(after_restart) == 1, "the server started twice: once, and once after the crash"
    retry = after_restart[0]
    everything = before_crash + retry
    partial_seen = {p for s in set(seen) for p in whole_chunks_only(*s, everything)}
    assert partial_seen == set(), "a partial chunk was visible during the run"

    # the interrupted try walked from the first expired id until the crash cut it short
    assert before_crash and consecutive(before_crash, 0, before_crash[-1][1]) == []
    # the retry began where the committed chunks ended and walked to the last expired id
    resumed_at = after_crash[0] - 1
    assert consecutive(retry, resumed_at, EVENTS - 1) == []

    lowest, expired, recent = await state()
    assert (lowest, expired, recent) == (None, 0, EVENTS // 5)
    summary = result["r"]
    assert summary["remaining_expired"] == 0 and summary["already_running"] == 0
    # the successful try deleted exactly its chunks' expired events, in the chunks the server ran
    assert summary["deleted"] == expired_between(resumed_at + 1, EVENTS)
    assert summary["chunks"] == len(retry), (
        f"the server ran {len(retry)} DELETEs for the retry's {summary['chunks']} chunks: a chunk is not one statement"
    )
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
    # chunks of any size, ending on an expired id (500 is a recent one) or not
    windows = [(0, 500), (500, 1502), (1502, 2504), (2504, EVENTS)]
    recent = EVENTS // 5
    for lowest in (1, 501, 1503, 2506):  # 2505 is recent: the chunk (1502, 2504] is whole
        assert whole_chunks_only(lowest, expired_between(lowest, EVENTS), recent, windows) == []
    assert whole_chunks_only(None, 0, recent, windows) == []
    assert whole_chunks_only(1001, expired_between(1001, EVENTS), recent, windows) == [
        "the lowest expired id left, 1001, is inside the chunk (500, 1502]"
    ]
    assert whole_chunks_only(1504, expired_between(1504, EVENTS), recent, windows)  # 1503 alone gone
    assert whole_chunks_only(1001, expired_between(1001, EVENTS), recent, windows[:1])  # no such chunk
    assert whole_chunks_only(501, expired_between(501, EVENTS) - 1, recent, windows)  # a hole
    assert whole_chunks_only(501, expired_between(501, EVENTS), recent - 1, windows)  # a recent one
    assert whole_chunks_only(None, 0, recent, windows[:3])  # all gone, but the chunks stopped at 2504


def test_the_chunks_are_read_from_the_servers_general_log():
    general_log = (
        "/usr/sbin/mariadbd, Version: 10.11 (Debian 12). started with:\nTime Id Command Argument\n"
        "\t\t     4 Query\tDELETE FROM telemetry.events WHERE telemetry.events.id > 0 AND "
        "telemetry.events.id <= 500 AND telemetry.events.created_at < '2026-09-02 13:50:49'\n"
        "\t\t     4 Query\tSELECT 'DELETE FROM telemetry.events WHERE x.id > 1 AND x.id <= 2 '\n"
        "/usr/sbin/mariadbd, Version: 10.11 (Debian 12). started with:\nTime Id Command Argument\n"
        "\t\t     5 Query\tDELETE FROM telemetry.events WHERE telemetry.events.id > 500 AND "
        "telemetry.events.id <= 1502 AND telemetry.events.created_at < '2026-09-02 13:50:50'\n"
    )
    assert delete_windows(general_log) == [[(0, 500)], [(500, 1502)]]


def test_the_chunk_walk_check_sees_a_gap_an_overlap_a_short_end_and_a_wide_chunk():
    assert consecutive([(10, 500), (500, 1500)], 10, 1500) == []
    assert consecutive([(10, 500), (501, 1500)], 10, 1500)
    assert consecutive([(10, 500), (499, 1500)], 10, 1500)
    assert consecutive([(10, 500), (500, 1400)], 10, 1500)
    assert consecutive([(10, 500), (500, 1501)], 10, 1501)

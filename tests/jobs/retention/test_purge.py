import asyncio
import dataclasses
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, func, select, text

from db.pickatale import account_center_sessions, events, reading_sessions
from demo.retention import seed_demo
from jobfleet.payloads import RetentionRun
from jobfleet.settings import SCHEDULES_DIR
from jobs.errors import Permanent
from jobs.retention import purge
from jobs.retention.run_lock import run_lock_name

SHIPPED = SCHEDULES_DIR / "retention.toml"


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def with_policies(tmp_path: Path, *, chunk_size: int, pause_s: float = 0) -> Path:
    """The shipped policies with test-sized chunks and pauses."""
    source = SHIPPED.read_text()
    source = re.sub(r"(?m)^chunk_size = \d+", f"chunk_size = {chunk_size}", source)
    source = re.sub(r"(?m)^pause_between_chunks_s = .*", f"pause_between_chunks_s = {pause_s}", source)
    path = tmp_path / "retention.toml"
    path.write_text(source)
    return path


def using(deps, **settings):
    return dataclasses.replace(deps, settings=deps.settings.model_copy(update=settings))


async def add_events(engine, ages: list[timedelta]) -> None:
    now = utc_now()
    async with engine.begin() as conn:
        await conn.execute(
            events.insert().values(
                [
                    {
                        "event_id": str(uuid.uuid4()),
                        "learner_id": "learner-1",
                        "session_id": "session-1",
                        "event_type": "page_turned",
                        "client_ts": 0,
                        "created_at": now - age,
                    }
                    for age in ages
                ]
            )
        )


async def event_ages_days(engine) -> list[int]:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(events.c.created_at).order_by(events.c.id))).scalars()
        now = utc_now()
        return [(now - created).days for created in rows]


async def purge_events(deps):
    return await purge.run(deps, RetentionRun(policy="telemetry.events"))


async def test_deletes_events_older_than_90_days_and_keeps_younger(deps, mysql):
    await add_events(mysql, [timedelta(days=91)] * 3 + [timedelta(days=89)] * 2 + [timedelta(days=1)])

    summary = await purge_events(deps)

    assert summary == {"deleted": 3, "updated": 0, "remaining_expired": 0, "chunks": 1, "already_running": 0}
    assert await event_ages_days(mysql) == [89, 89, 1]


async def test_deletes_in_chunks_walking_the_primary_key(deps, mysql, tmp_path):
    await add_events(mysql, [timedelta(days=100)] * 25 + [timedelta(days=5)] * 5)
    small = using(deps, retention_file=with_policies(tmp_path, chunk_size=10))
    deletes: list[str] = []

    def count_deletes(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("DELETE"):
            deletes.append(statement)

    engine = mysql.sync_engine
    event.listen(engine, "before_cursor_execute", count_deletes)
    try:
        summary = await purge_events(small)
    finally:
        event.remove(engine, "before_cursor_execute", count_deletes)

    # 25 due rows in windows of 10 ids: 3 statements, none touching more than 10 rows.
    assert (summary["deleted"], summary["chunks"], len(deletes)) == (25, 3, 3)
    assert all("id >" in d and "id <=" in d for d in deletes), deletes
    assert await event_ages_days(mysql) == [5] * 5


async def test_stops_at_the_time_budget_and_the_next_run_resumes(deps, mysql, tmp_path):
    await add_events(mysql, [timedelta(days=120)] * 30)
    policies = with_policies(tmp_path, chunk_size=10)
    # A budget that is spent after the first chunk.
    tight = using(deps, retention_file=policies, retention_budget_s=1e-6)

    first = await purge_events(tight)
    assert (first["deleted"], first["chunks"], first["remaining_expired"]) == (10, 1, 20)

    second = await purge_events(using(deps, retention_file=policies))
    assert (second["deleted"], second["chunks"], second["remaining_expired"]) == (20, 2, 0)
    assert await event_ages_days(mysql) == []


async def test_a_run_while_another_holds_the_lock_does_nothing(deps, mysql):
    await add_events(mysql, [timedelta(days=120)] * 4)
    name = run_lock_name(deps.settings.pickatale_db_prefix)
    async with mysql.connect() as other_run:
        assert (await other_run.execute(text("SELECT GET_LOCK(:n, 0)"), {"n": name})).scalar() == 1
        summary = await purge.run(deps, RetentionRun())
        await other_run.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": name})

    assert summary == {"deleted": 0, "updated": 0, "remaining_expired": 0, "chunks": 0, "already_running": 1}
    assert len(await event_ages_days(mysql)) == 4
    assert (await purge.run(deps, RetentionRun()))["deleted"] == 4


async def test_two_runs_at_once_purge_once(deps, mysql, tmp_path):
    await add_events(mysql, [timedelta(days=120)] * 40)
    slow = using(deps, retention_file=with_policies(tmp_path, chunk_size=5, pause_s=0.02))

    a, b = await asyncio.gather(purge_events(slow), purge_events(slow))

    assert a["deleted"] + b["deleted"] == 40
    assert a["already_running"] + b["already_running"] == 1
    assert await event_ages_days(mysql) == []


async def test_inserts_carry_on_while_the_purge_runs(deps, mysql, tmp_path):
    await add_events(mysql, [timedelta(days=120)] * 3000)
    # 25 chunks with a 0.1 s pause after each: the purge runs for at least 2.4 s.
    slow = using(deps, retention_file=with_policies(tmp_path, chunk_size=120, pause_s=0.1))
    waits: list[float] = []
    purging = asyncio.Event()
    done = asyncio.Event()

    async def writer() -> None:
        await purging.wait()
        while not done.is_set():
            started = time.monotonic()
            await add_events(mysql, [timedelta(0)])
            waits.append(time.monotonic() - started)
            await asyncio.sleep(0.01)

    async def purger():
        purging.set()
        try:
            return await purge_events(slow)
        finally:
            done.set()

    summary, _ = await asyncio.gather(purger(), writer())

    assert summary["deleted"] == 3000 and summary["chunks"] == 25
    assert len(waits) >= 20, "the writer should have inserted all through the purge"
    # A bound on lock waits, not a speed test. Each chunk is one READ COMMITTED transaction
    # taking record locks only on the old rows it deletes, and a new event goes to the end of
    # the primary key and of the created_at index, which no chunk locks: an insert should never
    # wait on the purge, at worst for one chunk's transaction (milliseconds for 120 rows). A purge
    # that held its locks across chunks would block an insert for most of its 2.4 s or more (on
    # MariaDB 10.11, one DELETE of these 3000 rows kept open 3 s made a new insert wait 2.5 s). 2 s
    # is far above any single chunk even on a loaded CI machine, and well below that failure.
    assert max(waits) < 2.0, f"longest insert waited {max(waits):.2f} s"
    assert await event_ages_days(mysql) == [0] * len(waits)


async def test_deletes_logins_expired_or_invalidated_over_30_days_ago(deps, mysql):
    now = utc_now()
    logins = {
        "expired_31d": (now - timedelta(days=31), None),
        "expired_29d": (now - timedelta(days=29), None),
        "invalidated_31d": (now + timedelta(days=2), now - timedelta(days=31)),
        "invalidated_29d": (now - timedelta(days=1), now - timedelta(days=29)),
        "live": (now + timedelta(days=7), None),
    }
    async with mysql.begin() as conn:
        await conn.execute(
            account_center_sessions.insert().values(
                [
                    {
                        "user_id": 1,
                        "role": "parent",
                        "token_hash": name.ljust(64, "x"),
                        "expires_at": expires,
                        "invalidated_at": invalidated,
                        "created_at": now - timedelta(days=60),
                    }
                    for name, (expires, invalidated) in logins.items()
                ]
            )
        )

    summary = await purge.run(deps, RetentionRun(policy="account_center.sessions"))

    assert (summary["deleted"], summary["remaining_expired"]) == (2, 0)
    async with mysql.connect() as conn:
        kept = (await conn.execute(select(account_center_sessions.c.token_hash))).scalars()
        assert sorted(h.rstrip("x") for h in kept) == ["expired_29d", "invalidated_29d", "live"]


async def test_marks_open_reading_sessions_idle_for_a_day_abandoned(deps, mysql):
    now = utc_now()
    readings = {
        "idle_25h": ("open", now - timedelta(days=3), now - timedelta(hours=25)),
        "active_23h": ("open", now - timedelta(days=3), now - timedelta(hours=23)),
        "no_event_started_25h": ("open", now - timedelta(hours=25), None),
        "no_event_started_23h": ("open", now - timedelta(hours=23), None),
        "completed_old": ("completed", now - timedelta(days=9), now - timedelta(days=9)),
    }
    async with mysql.begin() as conn:
        await conn.execute(
            reading_sessions.insert().values(
                [
                    {
                        "session_id": name,
                        "learner_id": "learner-1",
                        "book_id": "book-1",
                        "state": state,
                        "pages_read": 1,
                        "words_read": 10,
                        "started_at": started,
                        "last_event_at": last_event,
                        "created_at": started,
                    }
                    for name, (state, started, last_event) in readings.items()
                ]
            )
        )

    summary = await purge.run(deps, RetentionRun(policy="reader_app.reading_sessions"))

    assert (summary["updated"], summary["deleted"], summary["remaining_expired"]) == (2, 0, 0)
    async with mysql.connect() as conn:
        rows = await conn.execute(select(reading_sessions.c.session_id, reading_sessions.c.state))
        states = dict(rows.all())
    assert states == {
        "idle_25h": "abandoned",
        "active_23h": "open",
        "no_event_started_25h": "abandoned",
        "no_event_started_23h": "open",
        "completed_old": "completed",
    }


async def test_no_policy_named_runs_every_policy_on_the_demo_data(deps, mysql):
    async with mysql.begin() as conn:
        seeded = await seed_demo(conn)

    summary = await purge.run(deps, RetentionRun())

    assert summary == {
        "deleted": seeded["old_events"] + seeded["dead_logins"],
        "updated": seeded["stale_readings"],
        "remaining_expired": 0,
        "chunks": 3,
        "already_running": 0,
    }
    async with mysql.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(events))).scalar() == seeded["new_events"]


async def test_an_unknown_policy_is_refused_by_name(deps, mysql):
    with pytest.raises(Permanent, match=r"unknown retention policy 'telemetry\.evnts'.*telemetry\.events"):
        await purge.run(deps, RetentionRun(policy="telemetry.evnts"))

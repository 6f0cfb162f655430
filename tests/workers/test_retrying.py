"""Which real database errors the runtime retries: caused on the test run's PostgreSQL, not faked."""

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from db.engines import pinteach_engine
from workers.retrying import is_transient


async def raised(coro) -> DBAPIError:
    with pytest.raises(DBAPIError) as info:
        await coro
    return info.value


async def test_a_deadlock_is_retried(settings, pg: AsyncEngine):
    engine = pinteach_engine(settings.pinteach_dsn, pool_size=2)
    locked = [asyncio.Event(), asyncio.Event()]

    async def lock_both(first: str, second: str, mine: asyncio.Event, theirs: asyncio.Event) -> None:
        async with engine.begin() as conn:
            await conn.execute(text(f"LOCK TABLE {first} IN ACCESS EXCLUSIVE MODE"))
            mine.set()
            await theirs.wait()
            await conn.execute(text(f"LOCK TABLE {second} IN ACCESS EXCLUSIVE MODE"))

    try:
        outcomes = await asyncio.gather(
            lock_both("teachers", "students", locked[0], locked[1]),
            lock_both("students", "teachers", locked[1], locked[0]),
            return_exceptions=True,
        )
    finally:
        await engine.dispose()
    (deadlock,) = [o for o in outcomes if isinstance(o, BaseException)]
    assert isinstance(deadlock, DBAPIError) and deadlock.orig.sqlstate == "40P01"
    assert is_transient(deadlock)


async def test_a_server_shutting_down_its_connections_is_retried(settings, pg: AsyncEngine):
    # what a fast shutdown or restart does to a running job's connection: 57P01 admin_shutdown
    engine = pinteach_engine(settings.pinteach_dsn, pool_size=2)
    try:
        async with engine.connect() as victim, engine.connect() as admin:
            pid = (await victim.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            error = await raised(victim.execute(text("SELECT 1")))
    finally:
        await engine.dispose()
    assert is_transient(error)


async def test_a_bug_in_sql_is_not_retried(pg: AsyncEngine):
    async with pg.connect() as conn:
        error = await raised(conn.execute(text("SELECT no_such_column FROM teachers")))
    assert not is_transient(error)


async def test_a_connection_refused_is_retried():
    with pytest.raises(OSError) as info:
        await asyncio.open_connection("127.0.0.1", 1)
    assert is_transient(info.value)


async def test_a_database_that_is_away_is_retried():
    # asyncpg tries every address of localhost; what it raises is what a job sees
    engine = pinteach_engine("postgresql://postgres@localhost:1/pinteach", pool_size=1)
    try:
        with pytest.raises(OSError) as info:
            async with engine.connect():
                pass
    finally:
        await engine.dispose()
    assert is_transient(info.value)


def test_a_file_error_is_not_retried(tmp_path):
    with pytest.raises(OSError) as missing:
        (tmp_path / "missing.toml").read_text()
    with pytest.raises(OSError) as directory:
        tmp_path.read_text()
    assert not is_transient(missing.value)
    assert not is_transient(directory.value)


def test_every_address_of_a_host_failing_is_retried():
    # built as asyncio's create_connection builds it when 127.0.0.1 and ::1 fail differently (this
    # machine's localhost has one address, so the real one cannot be caused here)
    error = OSError(
        "Multiple exceptions: [Errno 111] Connect call failed ('127.0.0.1', 1), "
        "[Errno 99] Cannot assign requested address"
    )
    assert is_transient(error)
    assert not is_transient(OSError("Multiple choices"))

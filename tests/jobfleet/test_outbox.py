"""Producer.enqueue_in_transaction: the outbox row goes through the caller's own transaction."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from sqlalchemy import select

from db.engines import libpq_dsn, pinteach_engine
from db.pinteach import job_outbox
from jobfleet.outbox import OutboxUnavailable
from jobfleet.producer import InvalidPayload, Producer
from tests import services

TRACE = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate": "x=1"}


@pytest.fixture
def producer(redis) -> Producer:
    return Producer(redis)


@pytest.fixture
async def raw(pg, settings):
    conn = await asyncpg.connect(libpq_dsn(settings.pinteach_dsn))
    yield conn
    await conn.close()


async def outbox_rows(pg) -> list:
    async with pg.connect() as conn:
        return (await conn.execute(select(job_outbox).order_by(job_outbox.c.id))).all()


async def test_asyncpg_commit_writes_one_row_with_every_field(producer, raw, pg, redis):
    message_id = uuid.uuid4()
    when = datetime(2031, 5, 17, 9, 30, tzinfo=UTC)
    async with raw.transaction():
        job_id = await producer.enqueue_in_transaction(
            raw,
            "messages.deliver",
            {"message_id": message_id},
            key=str(message_id),
            defer_until=when,
            trace_context=TRACE,
        )
        unkeyed = await producer.enqueue_in_transaction(raw, "fleet.sleep", {"ms": 3})
    rows = await outbox_rows(pg)
    assert job_id == f"messages.deliver:{message_id}"
    assert unkeyed == f"fleet.sleep:outbox-{rows[1].id}"
    assert rows[0].job == "messages.deliver" and rows[0].payload == {"message_id": str(message_id)}
    assert rows[0].job_key == str(message_id) and rows[0].run_at == when
    assert rows[0].trace_context == TRACE
    # (its trace_context is the current one: none here, unless a traced test ran earlier in this process)
    assert (rows[1].job_key, rows[1].run_at) == (None, None)
    assert await redis.dbsize() == 0, "Redis is the relay's business, not the producer's"


async def test_asyncpg_rollback_leaves_no_row(producer, raw, pg):
    tx = raw.transaction()
    await tx.start()
    await producer.enqueue_in_transaction(raw, "fleet.noop", key="gone")
    await tx.rollback()
    assert await outbox_rows(pg) == []


async def test_asyncpg_outside_a_transaction_is_refused(producer, raw, pg):
    with pytest.raises(OutboxUnavailable, match="inside a transaction"):
        await producer.enqueue_in_transaction(raw, "fleet.noop")
    assert await outbox_rows(pg) == []


async def test_a_callers_own_jsonb_codec_still_stores_objects(producer, raw, pg):
    await raw.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    async with raw.transaction():
        await producer.enqueue_in_transaction(raw, "fleet.sleep", {"ms": 5}, trace_context=TRACE)
    (row,) = await outbox_rows(pg)
    assert row.payload == {"ms": 5} and row.trace_context == TRACE


async def test_sqlalchemy_connection_commit_and_rollback(producer, pg):
    async with pg.begin() as conn:
        job_id = await producer.enqueue_in_transaction(conn, "fleet.sleep", {"ms": 1}, defer_by=60)
    async with pg.connect() as conn:
        await producer.enqueue_in_transaction(conn, "fleet.sleep", {"ms": 2}, key="rolled-back")
        await conn.rollback()
    (row,) = await outbox_rows(pg)
    assert job_id == f"fleet.sleep:outbox-{row.id}"
    assert row.payload == {"ms": 1}
    assert timedelta(seconds=55) < row.run_at - datetime.now(UTC) <= timedelta(seconds=60)


async def test_validation_comes_first_and_leaves_the_transaction_usable(producer, pg):
    async with pg.begin() as conn:
        with pytest.raises(InvalidPayload, match="'fleet.sleep'.*ms"):
            await producer.enqueue_in_transaction(conn, "fleet.sleep", {"ms": "soon"})
        with pytest.raises(ValueError, match="the limit is 200"):
            await producer.enqueue_in_transaction(conn, "fleet.noop", key="k" * 201)
        await producer.enqueue_in_transaction(conn, "fleet.noop", key="fine")
    assert [r.job_key for r in await outbox_rows(pg)] == ["fine"]


async def test_other_objects_are_refused_by_name(producer):
    with pytest.raises(OutboxUnavailable, match="not dict"):
        await producer.enqueue_in_transaction({}, "fleet.noop")


async def test_a_database_without_the_outbox_says_which_migration(producer, settings):
    name = f"jf_test_{services.RUN_ID}_no_outbox_producer"
    admin = await asyncpg.connect(services.PG_ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = services.PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + name
    engine = pinteach_engine(dsn, pool_size=1)
    try:
        conn = await asyncpg.connect(dsn)
        try:
            async with conn.transaction():
                with pytest.raises(OutboxUnavailable, match="no job_outbox table .PinTeach migration 0080"):
                    await producer.enqueue_in_transaction(conn, "fleet.noop")
        finally:
            await conn.close()
        async with engine.connect() as sa_conn:
            with pytest.raises(OutboxUnavailable, match="no job_outbox table"):
                await producer.enqueue_in_transaction(sa_conn, "fleet.noop")
    finally:
        await engine.dispose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()

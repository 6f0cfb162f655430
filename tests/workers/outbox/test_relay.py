"""The outbox relay against real PostgreSQL and Redis: committed rows become one job each, rolled
back ones never, bad rows go to the failure record, two relays share the work."""

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import structlog
from sqlalchemy import func, insert, select, text

from db.engines import libpq_dsn
from db.pinteach import job_outbox
from jobfleet import keys, wire
from jobfleet.producer import NotReplicated, Producer
from tests import services
from tests.chaos.processes import log_events, start_worker, stop_worker, wait_for_result
from tests.chaos.test_redis_restart import wait_until
from workers.failures import FailureRecord
from workers.outbox import OutboxRelay

TRACE = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}


@pytest.fixture
async def relay(pg, redis, settings):
    relay = OutboxRelay(settings.pinteach_dsn, redis, batch_size=100, listen=False)
    yield relay
    await relay.close()


async def add_rows(pg, *rows: dict) -> list[int]:
    full = [{"job_key": None, "run_at": None, "trace_context": None, **row} for row in rows]
    async with pg.begin() as conn:
        result = await conn.execute(
            insert(job_outbox).returning(job_outbox.c.id, sort_by_parameter_order=True), full
        )
        return [r.id for r in result]


async def outbox_size(pg) -> int:
    async with pg.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(job_outbox))).scalar_one()


async def test_committed_rows_run_in_a_real_worker_and_rolled_back_ones_never(pg, redis, env, tmp_path):
    log = tmp_path / "worker.log"
    worker = await start_worker({**env, "JOBFLEET_LOG_LEVEL": "INFO"}, log, "default")
    producer = Producer(redis)
    try:
        async with pg.begin() as conn:
            keyed = await producer.enqueue_in_transaction(conn, "fleet.sleep", {"ms": 2}, key="committed")
            unkeyed = await producer.enqueue_in_transaction(conn, "fleet.noop", trace_context=TRACE)
        async with pg.connect() as conn:
            never = await producer.enqueue_in_transaction(conn, "fleet.noop", key="rolled-back")
            await conn.rollback()
        assert (await wait_for_result(redis, keyed))["r"] == {"slept_ms": 2}
        assert (await wait_for_result(redis, unkeyed))["s"] is True
        assert unkeyed.startswith("fleet.noop:outbox-")
        await wait_until(lambda: _is_zero(outbox_size(pg)), 10, "the outbox did not empty")
    finally:
        code = await stop_worker(worker)
    assert code == 0, log.read_text()[-3000:]
    assert not await redis.exists(keys.job_key_prefix + never, keys.result_key_prefix + never)
    assert "outbox_relay_started" in [e["event"] for e in log_events(log)]


async def _is_zero(count) -> bool:
    return await count == 0


async def test_a_relay_sweep_turns_each_committed_row_into_one_job(relay, pg, redis):
    producer = Producer(redis)
    async with pg.begin() as conn:
        ids = [await producer.enqueue_in_transaction(conn, "fleet.sleep", {"ms": i}) for i in range(250)]
    async with pg.connect() as conn:
        await producer.enqueue_in_transaction(conn, "fleet.noop", key="rolled-back")
        await conn.rollback()
    counts = await relay.drain()
    assert counts == {"enqueued": 250}
    assert await outbox_size(pg) == 0
    queued = await redis.zrange(keys.QUEUE_DEFAULT, 0, -1)
    assert sorted(q.decode() for q in queued) == sorted(ids)
    document = wire.decode(await redis.get(keys.job_key_prefix + ids[7]))
    assert document["f"] == "fleet.sleep" and document["k"] == {"ms": 7}
    assert await redis.hgetall(keys.OUTBOX_STATS) == {b"enqueued": b"250"}
    assert await relay.drain() == {}, "nothing left to relay"
    # each batch's round trip removed the markers of the batch committed before it: only the last
    # batch's 50 are left, until the next batch
    markers = [k async for k in redis.scan_iter(match=keys.OUTBOX_RELAYED_PREFIX + "*", count=1000)]
    assert len(markers) == 50


async def test_deferred_rows_wait_for_run_at_and_carry_the_trace_context(relay, pg, redis):
    run_at = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=3)
    [row] = await add_rows(
        pg, {"job": "fleet.noop", "payload": {}, "job_key": "later", "run_at": run_at, "trace_context": TRACE}
    )
    await relay.drain()
    assert await redis.zscore(keys.QUEUE_DEFAULT, "fleet.noop:later") == run_at.timestamp() * 1000
    document = wire.decode(await redis.get(keys.job_key_prefix + "fleet.noop:later"))
    assert document["tc"] == TRACE
    assert await redis.pttl(keys.job_key_prefix + "fleet.noop:later") > 3 * 3600 * 1000
    assert await redis.get(keys.OUTBOX_RELAYED_PREFIX + str(row))


async def test_bad_rows_go_to_the_failure_record_and_the_rows_behind_them_flow(relay, pg, redis):
    ids = await add_rows(
        pg,
        {"job": "fleet.sleep", "payload": {"ms": 1}},
        {"job": "no.such_job", "payload": {}},
        {"job": "fleet.sleep", "payload": {"ms": "soon"}, "job_key": "bad-payload"},
        {"job": "fleet.noop", "payload": [1, 2]},
        {"job": "fleet.sleep", "payload": {"ms": 2}},
    )
    with structlog.testing.capture_logs() as logs:
        counts = await relay.drain()
    assert counts == {"enqueued": 2, "failed": 3}
    assert await outbox_size(pg) == 0
    good = wire.decode(await redis.get(keys.job_key_prefix + f"fleet.sleep:outbox-{ids[0]}"))
    assert good["k"] == {"ms": 1} and "tc" not in good, "a row without trace_context gives no tc"
    assert (
        await redis.exists(
            keys.job_key_prefix + f"fleet.sleep:outbox-{ids[0]}",
            keys.job_key_prefix + f"fleet.sleep:outbox-{ids[4]}",
        )
        == 2
    )
    failures = {f["job_id"]: f for f in await FailureRecord(redis).page()}
    assert set(failures) == {
        f"no.such_job:outbox-{ids[1]}",
        "fleet.sleep:bad-payload",
        f"fleet.noop:outbox-{ids[3]}",
    }
    assert "unknown job 'no.such_job'" in failures[f"no.such_job:outbox-{ids[1]}"]["error"]
    bad = failures["fleet.sleep:bad-payload"]
    assert bad["error"].startswith(
        f"outbox row {ids[2]} was not enqueued: invalid payload for job 'fleet.sleep'"
    )
    assert bad["payload"] == {"ms": "soon"} and bad["queue"] == keys.QUEUE_DEFAULT
    assert "payload must be a JSON object, not list" in failures[f"fleet.noop:outbox-{ids[3]}"]["error"]
    assert sorted(e["job_id"] for e in logs if e["event"] == "outbox_row_failed") == sorted(failures)


async def test_a_batch_sent_again_after_a_crash_before_its_delete_adds_nothing(relay, pg, redis):
    ids = await add_rows(pg, *({"job": "fleet.noop", "payload": {}} for _ in range(5)))
    # a relay that dies after Redis took the batch: its transaction never commits the DELETE
    async with pg.connect() as conn:
        await conn.begin()
        rows = (await conn.execute(relay.claim, {"batch": 100})).all()
        counts, _ = await relay.pusher.push(rows)
        await conn.rollback()
    assert counts["enqueued"] == 5 and await outbox_size(pg) == 5
    # two of the jobs have run meanwhile and kept no result: their keys are gone
    ran = [f"fleet.noop:outbox-{i}" for i in ids[:2]]
    await redis.delete(*(keys.job_key_prefix + j for j in ran))
    await redis.zrem(keys.QUEUE_DEFAULT, *ran)

    assert await relay.drain() == {"relayed_before": 5}
    assert await outbox_size(pg) == 0
    assert await redis.zcard(keys.QUEUE_DEFAULT) == 3, "nothing was enqueued a second time"
    assert not await redis.exists(*(keys.job_key_prefix + j for j in ran))
    assert await redis.hget(keys.OUTBOX_STATS, "enqueued") == b"5"


async def test_a_key_already_queued_adds_no_second_job(relay, pg, redis):
    first = await Producer(redis).enqueue("fleet.sleep", {"ms": 1}, key="once")
    await add_rows(pg, {"job": "fleet.sleep", "payload": {"ms": 9}, "job_key": "once"})
    assert await relay.drain() == {"duplicate": 1}
    assert first == "fleet.sleep:once" and await redis.zcard(keys.QUEUE_DEFAULT) == 1
    assert wire.decode(await redis.get(keys.job_key_prefix + first))["k"] == {"ms": 1}


async def test_two_relays_racing_share_the_work_without_doubles(pg, redis, settings):
    async with pg.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO job_outbox (job, payload) "
                "SELECT 'fleet.sleep', jsonb_build_object('ms', n) FROM generate_series(1, 3000) n"
            )
        )
    relays = [OutboxRelay(settings.pinteach_dsn, redis, batch_size=50, listen=False) for _ in range(2)]
    try:
        first, second = await asyncio.gather(*(r.drain() for r in relays))
    finally:
        for r in relays:
            await r.close()
    assert first["enqueued"] > 0 and second["enqueued"] > 0, (first, second)
    assert first["enqueued"] + second["enqueued"] == 3000
    assert not first["relayed_before"] and not second["relayed_before"]
    assert await redis.zcard(keys.QUEUE_DEFAULT) == 3000 and await outbox_size(pg) == 0


async def test_listen_wakes_the_relay_long_before_its_sweep(pg, redis, settings):
    relay = OutboxRelay(settings.pinteach_dsn, redis, sweep_s=600)
    task = asyncio.create_task(relay.run())
    try:
        await asyncio.wait_for(relay.listener.listening.wait(), 30)
        await asyncio.sleep(0.2)  # the catch-up drain after LISTEN found nothing
        async with pg.begin() as conn:
            job_id = await Producer(redis).enqueue_in_transaction(conn, "fleet.noop", key="woken")
        # the sweep would come in ten minutes: only the notification can bring it this soon
        await wait_until(
            lambda: redis.exists(keys.job_key_prefix + job_id), 20, "LISTEN did not wake the relay"
        )
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_the_relay_stays_off_with_one_line_where_the_table_is_missing(redis):
    name = f"jf_test_{services.RUN_ID}_no_outbox"
    admin = await asyncpg.connect(services.PG_ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        dsn = services.PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + name
        with structlog.testing.capture_logs() as logs:
            await asyncio.wait_for(OutboxRelay(dsn, redis).run(), 30)
        assert [(e["event"], e["reason"]) for e in logs] == [
            (
                "outbox_relay_off",
                "table job_outbox is missing (migration 0080_job_fleet_2 has not run): the outbox relay is off",
            )
        ]
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def test_libpq_dsn_drops_the_driver_suffix():
    assert libpq_dsn("postgresql+asyncpg://u:p@h:5/d") == "postgresql://u:p@h:5/d"


async def test_durable_relay_keeps_its_rows_until_replicas_hold_the_jobs(pg, redis, settings):
    # the shared Redis has no replica: WAIT 1 confirms none, so the DELETE must not commit
    relay = OutboxRelay(settings.pinteach_dsn, redis, listen=False, durable_replicas=1, durable_timeout_s=0.1)
    try:
        await add_rows(pg, {"job": "fleet.noop", "payload": {}, "job_key": "durable"})
        with pytest.raises(NotReplicated, match="0 of 1 replica"):
            await relay.drain()
        assert await outbox_size(pg) == 1, "the row waits for a replica"
        assert await redis.exists(keys.job_key_prefix + "fleet.noop:durable"), "the master has the job"
    finally:
        await relay.close()
    # without the requirement the next pass finds the job there and only deletes the row
    plain = OutboxRelay(settings.pinteach_dsn, redis, listen=False)
    try:
        assert await plain.drain() == {"relayed_before": 1}
    finally:
        await plain.close()
    assert await outbox_size(pg) == 0

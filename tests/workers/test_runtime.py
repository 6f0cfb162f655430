"""The worker runtime against real Redis and PostgreSQL: outcomes, retries, the failure record."""

import dataclasses
import json

from redis.asyncio import Redis

from jobfleet import keys, wire
from jobfleet.catalog import CATALOG
from jobfleet.producer import Producer
from jobs.deps import Deps
from workers.failures import FailureRecord
from workers.fleet import Fleet
from workers.stats import Stats
from workers.worker import build_worker


async def run_burst(settings, queue=keys.QUEUE_DEFAULT) -> None:
    await Fleet(settings, [queue], burst=True, scheduler=False).run()


async def test_a_job_runs_and_its_result_is_json(settings, redis: Redis):
    producer = Producer(redis)
    job_id = await producer.enqueue("fleet.sleep", {"ms": 5})

    await run_burst(settings)

    raw = await redis.get(keys.result_key_prefix + job_id)
    result = json.loads(raw)  # plain JSON: no pickle anywhere on the wire
    assert result["s"] is True and result["r"] == {"slept_ms": 5} and result["f"] == "fleet.sleep"
    stats = await redis.hgetall(keys.STATS_PREFIX + "fleet.sleep")
    assert stats[b"started"] == b"1" and stats[b"succeeded"] == b"1"


async def test_a_payload_of_the_wrong_shape_is_recorded_without_retry(settings, redis: Redis):
    # written as a non-Python producer would, bypassing validation
    await redis.set(
        keys.job_key_prefix + "bad1", wire.job_document("fleet.sleep", {"ms": "lots"}, wire.now_ms())
    )
    await redis.zadd(keys.QUEUE_DEFAULT, {"bad1": wire.now_ms()})

    await run_burst(settings)

    failure = await FailureRecord(redis).get("bad1")
    assert failure["job"] == "fleet.sleep" and failure["tries"] == 1
    assert "invalid payload for job 'fleet.sleep'" in failure["error"] and "ms" in failure["error"]
    assert "Traceback" in failure["traceback"]
    result = json.loads(await redis.get(keys.result_key_prefix + "bad1"))
    assert result["s"] is False


async def test_unknown_job_and_garbage_are_recorded_and_the_worker_goes_on(settings, redis: Redis):
    now = wire.now_ms()
    await redis.set(keys.job_key_prefix + "ghost", wire.job_document("no.such_job", {}, now))
    await redis.set(keys.job_key_prefix + "garbage", b"\x80\x04not json at all")
    good = await Producer(redis).enqueue("fleet.noop")
    await redis.zadd(keys.QUEUE_DEFAULT, {"ghost": now, "garbage": now})

    await run_burst(settings)

    record = FailureRecord(redis)
    ghost, garbage = await record.get("ghost"), await record.get("garbage")
    assert ghost["job"] == "no.such_job" and "not found" in ghost["error"]
    assert garbage["job"] == "<unknown>" and "deserialize" in garbage["error"]
    assert "not json" in garbage["raw"]
    assert json.loads(await redis.get(keys.result_key_prefix + good))["s"] is True
    assert await record.count() == 2


async def test_transient_failures_retry_with_backoff_then_land_in_the_record(settings, redis: Redis):
    # PostgreSQL on a port where nothing listens: a connection error on every try
    broken = settings.model_copy(update={"pinteach_dsn": "postgresql://postgres@127.0.0.1:1/nowhere"})
    deps = Deps.from_settings(broken)
    spec = dataclasses.replace(
        CATALOG["sessions.auto_complete"], max_tries=3, backoff_s=0.05, max_backoff_s=0.1
    )
    failures, stats = FailureRecord(redis), Stats()
    worker = build_worker(
        spec.queue,
        deps=deps,
        failures=failures,
        stats=stats,
        specs=[spec],
        burst=True,
        redis_target=settings.redis_target,
        max_jobs=10,
        poll_delay_s=0.01,
        shutdown_grace_s=0,
    )
    job_id = await Producer(redis).enqueue("sessions.auto_complete", key="t1")
    try:
        await worker.async_run()
    finally:
        await worker.close()
        await deps.close()

    failure = await failures.get(job_id)
    assert failure["tries"] == 3
    assert failure["error"].startswith("gave up after 3 tries: ")
    assert stats.totals["retried"] == 2 and stats.totals["failed"] == 1


async def test_a_failed_job_can_be_retried_from_the_record(settings, redis: Redis):
    record = FailureRecord(redis)
    await record.record(
        job_id="fleet.sleep:k1",
        job="fleet.sleep",
        queue=keys.QUEUE_DEFAULT,
        payload={"ms": 1},
        tries=5,
        error="boom",
    )
    await redis.set(keys.result_key_prefix + "fleet.sleep:k1", b"{}")  # the failed attempt's result

    new_id = await record.retry("fleet.sleep:k1")
    assert new_id == "fleet.sleep:k1", "a keyed job keeps its id, so its key still guards it"
    assert await record.count() == 0

    await run_burst(settings)
    assert json.loads(await redis.get(keys.result_key_prefix + new_id))["s"] is True


async def test_retry_all_and_delete_all(redis: Redis):
    record = FailureRecord(redis)
    for i in range(3):
        await record.record(
            job_id=f"j{i}", job="fleet.noop", queue=keys.QUEUE_DEFAULT, payload={}, tries=1, error="x"
        )
    await record.record(
        job_id="junk", job="<unknown>", queue=keys.QUEUE_DEFAULT, payload=None, tries=1, error="x"
    )
    assert [f["job_id"] for f in await record.page(0, 2)] == ["junk", "j2"]
    retried, errors = await record.retry_all()
    assert len(retried) == 3 and len(errors) == 1 and "unknown job" in errors[0]
    assert await record.delete_all() == 1
    assert await record.count() == 0


async def test_health_record_per_worker(settings, redis: Redis):
    await Producer(redis).enqueue("fleet.noop")
    fleet = Fleet(settings, [keys.QUEUE_DEFAULT], burst=True, scheduler=False)
    await fleet.run()
    # removed on a clean stop
    assert await redis.zscore(keys.WORKERS_INDEX, fleet.worker_id) is None

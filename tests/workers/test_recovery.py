"""Lease-based recovery against real Redis: what the recovery script puts back and what it leaves,
races between recovering workers, and the fence that stops a worker's jobs when its lease is not
renewed."""

import asyncio
import time

from redis.asyncio import Redis

from jobfleet import keys, wire
from jobfleet.producer import Producer
from workers import history
from workers.claiming import Claimer, worker_jobs_key
from workers.failures import FailureRecord
from workers.fleet import Fleet
from workers.lease import FENCE_BEATS, Lease
from workers.recovery import Recovery, note
from workers.stats import Stats
from workers.worker import build_worker

DEAD = "dead-host-1-abc"


async def orphan(redis: Redis, worker: str = DEAD, tries: int = 1, ms: int = 5) -> str:
    """A fleet.sleep job as a worker killed while running it leaves it: claimed under the worker's
    name, its try counted, the worker in the index, its lease (heartbeat record) gone."""
    job_id = await Producer(redis).enqueue("fleet.sleep", {"ms": ms})
    claimer = Claimer(redis, keys.QUEUE_DEFAULT, 600_000, worker)
    assert await claimer.claim([job_id.encode()], 10, wire.now_ms())
    await redis.set(keys.retry_key_prefix + job_id, tries)
    await redis.zadd(keys.WORKERS_INDEX, {worker: time.time()})
    return job_id


async def test_a_lapsed_lease_puts_its_job_back_once(redis: Redis):
    job_id = await orphan(redis, tries=2)
    assert await redis.get(keys.in_progress_key_prefix + job_id) == DEAD.encode()
    recovery = Recovery(redis, "alive-1", interval_s=1)

    [entry] = await recovery.recover(DEAD)

    assert entry | {"recovered_at": 0} == {
        "job_id": job_id,
        "job": "fleet.sleep",
        "queue": keys.QUEUE_DEFAULT,
        "worker_id": DEAD,
        "try": 2,
        "recovered_by": "alive-1",
        "recovered_at": 0,
    }
    assert not await redis.exists(keys.in_progress_key_prefix + job_id)
    assert await redis.zscore(keys.QUEUE_DEFAULT, job_id) is not None, "due again at its old score"
    assert not await redis.exists(worker_jobs_key(DEAD))
    assert await redis.hget(keys.RECOVERIES_COUNT, "fleet.sleep") == b"1"
    assert await redis.zcard(keys.RECOVERIES) == 1
    assert (await note(redis, job_id))["try"] == 2
    assert await recovery.recover(DEAD) == [], "already recovered"
    assert await redis.hget(keys.RECOVERIES_COUNT, "fleet.sleep") == b"1"


async def test_a_live_lease_keeps_its_jobs_however_long_they_run(redis: Redis):
    job_id = await orphan(redis)
    await redis.set(keys.WORKER_PREFIX + DEAD, b"{}", px=10_000)  # the worker beats: it is alive

    assert await Recovery(redis, "alive-1", 1).recover(DEAD) == []
    assert await Recovery(redis, "alive-1", 1).scan() == []

    assert await redis.get(keys.in_progress_key_prefix + job_id) == DEAD.encode()
    assert await redis.hget(worker_jobs_key(DEAD), job_id) == keys.QUEUE_DEFAULT.encode()


async def test_a_finished_job_or_one_another_worker_holds_is_only_forgotten(redis: Redis):
    finished = await orphan(redis)
    await redis.set(keys.result_key_prefix + finished, b"{}")
    taken = await orphan(redis)
    await redis.set(keys.in_progress_key_prefix + taken, b"other-worker")  # recovered and claimed anew
    gone = await orphan(redis)
    await redis.zrem(keys.QUEUE_DEFAULT, gone)

    assert await Recovery(redis, "alive-1", 1).recover(DEAD) == []

    assert await redis.get(keys.in_progress_key_prefix + taken) == b"other-worker"
    assert await redis.exists(keys.in_progress_key_prefix + finished)
    assert not await redis.exists(worker_jobs_key(DEAD)), "stale entries are dropped"
    assert not await redis.exists(keys.RECOVERIES_COUNT)


async def test_workers_racing_to_recover_put_each_job_back_once(redis: Redis, settings):
    job_ids = [await orphan(redis) for _ in range(20)]
    clients = [Redis.from_url(settings.redis_url) for _ in range(4)]
    try:
        results = await asyncio.gather(
            *(Recovery(c, f"alive-{i}", 1).scan() for i, c in enumerate(clients)),
            *(Recovery(c, f"racer-{i}", 1).recover(DEAD) for i, c in enumerate(clients)),
        )
    finally:
        for c in clients:
            await c.aclose()
    recovered = sorted(e["job_id"] for entries in results for e in entries)
    assert recovered == sorted(job_ids)
    assert await redis.hget(keys.RECOVERIES_COUNT, "fleet.sleep") == b"20"


async def test_one_worker_scans_per_half_beat(redis: Redis):
    await orphan(redis)
    second = Recovery(redis, "alive-2", interval_s=60)
    assert len(await Recovery(redis, "alive-1", interval_s=60).scan()) == 1
    await orphan(redis)
    assert await second.scan() == [], "the scan token is taken for half a beat"
    await redis.delete(keys.RECOVERY_SCAN)
    assert len(await second.scan()) == 1


async def test_a_fleet_recovers_and_runs_an_orphan_counting_one_try(settings, redis: Redis):
    job_id = await orphan(redis, tries=1)

    await Fleet(settings, [keys.QUEUE_DEFAULT], burst=True, scheduler=False).run()

    result = wire.decode(await redis.get(keys.result_key_prefix + job_id))
    assert result["s"] is True and result["t"] == 2


async def test_when_tries_run_out_the_failure_says_the_lease_lapsed(settings, redis: Redis):
    job_id = await orphan(redis, tries=5)  # fleet.sleep has 5 tries: the lost run was the last

    await Fleet(settings, [keys.QUEUE_DEFAULT], burst=True, scheduler=False).run()

    failure = await FailureRecord(redis).get(job_id)
    assert "max 5 retries exceeded: worker lease lapsed" in failure["error"]
    assert DEAD in failure["error"] and "try 5" in failure["error"]


async def test_an_aborted_orphan_is_recorded_as_aborted_not_run_again(settings, redis: Redis):
    job_id = await orphan(redis)
    await redis.zadd(keys.ABORT_JOBS, {job_id: wire.now_ms()})

    await Fleet(settings, [keys.QUEUE_DEFAULT], burst=True, scheduler=False).run()

    entry = await history.find(redis, job_id, ["fleet.sleep"])
    assert entry is not None and entry.status == "aborted"
    assert await redis.hget(keys.STATS_PREFIX + "fleet.sleep", "started") is None, "it never ran"


async def test_a_worker_that_cannot_renew_its_lease_stops_its_jobs_and_then_gives_them_back(
    settings, deps, redis: Redis
):
    interval_s = 0.2
    workers = []
    lease = Lease(redis, "fenced-1", interval_s, lambda: [i for w in workers for i in w.fence()])
    worker = build_worker(
        keys.QUEUE_DEFAULT,
        deps=deps,
        failures=FailureRecord(redis),
        stats=Stats(),
        redis_target=settings.redis_target,
        max_jobs=10,
        poll_delay_s=0.02,
        shutdown_grace_s=1,
        lease=lease,
    )
    workers.append(worker)
    job_id = await Producer(redis).enqueue("fleet.sleep", {"ms": 60_000})
    lease.start()  # and never renewed: no heartbeat runs here
    run = asyncio.create_task(worker.async_run())
    try:
        deadline = time.monotonic() + 10
        while not lease.fenced and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert lease.fenced and time.monotonic() - lease.renewed_at >= FENCE_BEATS * interval_s
        assert lease.unreleased == {job_id}
        while worker.job_tasks and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert not worker.job_tasks, "the job was stopped"
        # its finish wrote nothing: the job is still held until the lease is renewed
        assert await redis.get(keys.in_progress_key_prefix + job_id) == b"fenced-1"

        await lease.release_fenced()

        assert not await redis.exists(keys.in_progress_key_prefix + job_id)
        assert not await redis.exists(worker_jobs_key("fenced-1"))
        assert await redis.zscore(keys.QUEUE_DEFAULT, job_id) is not None
        await asyncio.sleep(3 * 0.02)
        assert not worker.job_tasks, "a fenced worker claims nothing"
    finally:
        lease.stop()
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
        await worker.close()

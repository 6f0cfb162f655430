"""Restart Redis under a running worker process: it reconnects on its own, its schedules resume,
nothing enqueued is lost, and while Redis is away the producer says so instead of dropping a job.

Runs a private redis-server (tests/chaos/servers.py) with an append-only file, as production
would: the machine's shared Redis serves other test runs and is never restarted.
"""

import asyncio
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

from jobfleet import keys
from jobfleet.producer import Job, Producer, ProducerUnavailable
from tests.chaos.processes import log_events, start_worker, stop_worker, wait_for_result, wait_until
from tests.chaos.servers import PrivateRedis, stopped

# longer than arq's own connection retries (5 x 1 s): the supervisor's backoff must grow, then reset
AWAY_S = 8


async def ticks_since(redis: Redis, since: datetime) -> list[str]:
    """Scheduled fleet.noop ticks at or after ``since`` that ran (their result is kept)."""
    found = []
    async for key in redis.scan_iter(match=keys.result_key_prefix + "fleet.noop:tick-*"):
        tick = key.decode().rsplit("tick-", 1)[1]
        if datetime.strptime(tick, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC) >= since.replace(microsecond=0):
            found.append(tick)
    return found


async def all_run(redis: Redis, job_ids: list[str], timeout_s: float = 60) -> None:
    for job_id in job_ids:
        result = await wait_for_result(redis, job_id, timeout_s)
        assert result["s"] is True, (job_id, result["r"])


async def test_the_first_commands_after_a_restart_go_through():
    # the client's pooled connections died with the server; Redis is back, so nothing may fail
    with PrivateRedis() as server:
        producer = Producer.from_url(server.url())
        try:
            first = await producer.enqueue("fleet.noop", key="first")
            server.restart()
            assert await producer.enqueue("fleet.noop", key="first") == first, "kept by the append-only file"
            server.restart()
            unkeyed = await producer.enqueue("fleet.noop")
            server.restart()
            assert len(await producer.enqueue_many([Job("fleet.noop"), Job("fleet.noop", key="x")])) == 2
            server.restart()
            assert await producer.cancel(unkeyed) is True
            assert await producer.redis.zcard(keys.QUEUE_DEFAULT) == 3
        finally:
            await producer.close()


@pytest.mark.slow
async def test_workers_reconnect_schedules_resume_and_the_producer_refuses_while_redis_is_away(env, tmp_path):
    schedules = tmp_path / "schedules.toml"
    schedules.write_text('["fleet.noop"]\ncron = "* * * * * *"\n')  # every second
    log = tmp_path / "worker.log"
    with PrivateRedis() as server:
        worker = await start_worker(
            {
                **env,
                "JOBFLEET_REDIS_URL": server.url(),
                "JOBFLEET_SCHEDULES_FILE": str(schedules),
                "JOBFLEET_HEALTH_INTERVAL_S": "0.5",
                "JOBFLEET_SHUTDOWN_GRACE_S": "5",
                "JOBFLEET_LOG_LEVEL": "INFO",
            },
            log,
            "default",
            scheduler=True,
        )
        redis = Redis.from_url(server.url())
        producer = Producer(redis)
        try:
            await wait_until(lambda: ticks_since(redis, datetime.now(UTC)), 30, "the schedule did not run")
            await all_run(redis, [await producer.enqueue("fleet.sleep", {"ms": 5}, key="before")])

            # a quick restart, then Redis away for a while: twice the fleet must come back
            server.restart()
            restarted_at = datetime.now(UTC)
            await all_run(
                redis, [await producer.enqueue("fleet.sleep", {"ms": 5}, key=f"quick-{i}") for i in range(5)]
            )
            await wait_until(
                lambda: ticks_since(redis, restarted_at), 30, "no tick ran after a quick restart"
            )

            with stopped(server):
                with pytest.raises(
                    ProducerUnavailable, match=r"job 'fleet.noop' was not enqueued: Redis is unreachable"
                ):
                    await producer.enqueue("fleet.noop", key="while-away")
                with pytest.raises(ProducerUnavailable, match=r"2 jobs were not enqueued"):
                    await producer.enqueue_many([Job("fleet.noop"), Job("fleet.sleep", {"ms": 1})])
                await asyncio.sleep(AWAY_S)
                assert worker.returncode is None, "the worker process outlives Redis going away"
            back_at = datetime.now(UTC)

            after = [await producer.enqueue("fleet.sleep", {"ms": 5}, key=f"after-{i}") for i in range(5)]
            after.append(await producer.enqueue("fleet.noop", key="while-away"))  # the refused one, again
            await all_run(redis, after)
            await wait_until(lambda: ticks_since(redis, back_at), 60, "no tick ran after Redis came back")
            await wait_until(
                lambda: redis.zcard(keys.WORKERS_INDEX), 30, "the worker's health record did not come back"
            )

            # a short outage later: a worker that had reconnected starts its backoff anew
            with stopped(server):
                await asyncio.sleep(1)
            await all_run(redis, [await producer.enqueue("fleet.sleep", {"ms": 5}, key="last")], timeout_s=10)
            assert await redis.zcard(keys.FAILED_INDEX) == 0, "no job failed for the restarts"
        finally:
            code = await stop_worker(worker)
            await redis.aclose()
    assert code == 0, log.read_text()[-3000:]
    lost = [e["reconnect_in_s"] for e in log_events(log) if e["event"] == "worker_redis_lost"]
    assert max(lost) > 1, "the long outage outlasted a reconnect attempt"
    assert lost[-1] == 1, "the last outage began a fresh backoff"


@pytest.mark.slow
async def test_a_job_running_while_redis_is_away_finishes_and_is_recorded(env, tmp_path):
    log = tmp_path / "worker.log"
    with PrivateRedis() as server:
        worker = await start_worker(
            {**env, "JOBFLEET_REDIS_URL": server.url(), "JOBFLEET_LOG_LEVEL": "INFO"}, log, "default"
        )
        redis = Redis.from_url(server.url())
        try:
            job_id = await Producer(redis).enqueue("fleet.sleep", {"ms": 3000}, key="through")
            await wait_until(
                lambda: redis.exists(keys.in_progress_key_prefix + job_id), 30, "it did not start"
            )
            with stopped(server):
                await asyncio.sleep(1)
            # arq keeps a running job's id in its in-progress key for the longest timeout of the queue
            # plus 10 s (over 5 minutes here): a job cancelled now would wait that long to run again
            result = await wait_for_result(redis, job_id, timeout_s=30)
        finally:
            code = await stop_worker(worker)
            await redis.aclose()
    assert code == 0, log.read_text()[-3000:]
    assert result["s"] is True and result["r"] == {"slept_ms": 3000}
    assert result["t"] == 1, "it ran through the outage, once"

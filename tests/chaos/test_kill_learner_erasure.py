"""Kill -9 the worker in the middle of a learner's telemetry step: the request stays ``processing``,
its row lock goes with the dead connection, and the next run completes the erasure having deleted
nothing but the learner's rows."""

import asyncio
import signal
import time

from sqlalchemy import func, select

from db.pickatale import events, learner_erasure_requests
from jobfleet.producer import Producer
from tests.chaos.processes import start_worker, stop_worker, wait_for_result
from tests.jobs.learners.world import assert_only_the_learner_changed, snapshot, world

EVENTS = 3000


async def learner_events(engine, learner_id: str) -> int:
    async with engine.connect() as conn:
        return (
            await conn.execute(select(func.count()).where(events.c.learner_id == learner_id))
        ).scalar_one()


async def status(engine, request_id: int) -> str:
    async with engine.connect() as conn:
        return (
            await conn.execute(
                select(learner_erasure_requests.c.status).where(learner_erasure_requests.c.id == request_id)
            )
        ).scalar_one()


async def test_kill_9_during_the_telemetry_step_then_the_next_run_completes(
    env, deps, mysql, redis, tmp_path
):
    w = await world(mysql, n_events=EVENTS, other_events=500)
    before = await snapshot(mysql)
    learner = w["emma"]["learner_id"]
    # 150 chunks with a pause after each: the telemetry step lasts seconds, long enough to be caught
    slow = {**env, "JOBFLEET_LEARNER_ERASE_CHUNK_SIZE": "20", "JOBFLEET_LEARNER_ERASE_PAUSE_S": "0.03"}
    producer = Producer(redis)

    worker = await start_worker(slow, tmp_path / "killed.log", "default")
    try:
        await producer.enqueue("learners.erase", {"request_id": w["request_id"]})
        deadline = time.monotonic() + 60
        while (left := await learner_events(mysql, learner)) == EVENTS:
            assert time.monotonic() < deadline and worker.returncode is None, "the erasure never started"
            await asyncio.sleep(0.01)
        worker.send_signal(signal.SIGKILL)
        await worker.wait()
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()

    left = await learner_events(mysql, learner)
    assert 0 < left < EVENTS, f"killed outside the telemetry step ({left} of {EVENTS} events left)"
    assert await status(mysql, w["request_id"]) == "processing"

    # the next run, in a fresh worker: the hourly sweep takes the request left processing
    worker = await start_worker(env, tmp_path / "next.log", "sweeps")
    try:
        for attempt in range(20):
            job_id = await producer.enqueue("learners.erase_due", key=f"after-kill-{attempt}")
            result = await wait_for_result(redis, job_id)
            assert result["s"], result["r"]
            if result["r"]["erased"] == 1:
                break
            # the server has not yet noticed the dead connection and still holds its row lock
            await asyncio.sleep(0.5)
    finally:
        assert await stop_worker(worker) == 0

    assert await status(mysql, w["request_id"]) == "completed"
    assert await learner_events(mysql, learner) == 0
    assert_only_the_learner_changed(before, await snapshot(mysql), w)

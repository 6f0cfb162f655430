"""The job history written in arq's finish transaction, and the last run of each sweep."""

import asyncio
import json
import subprocess
import sys
from asyncio.subprocess import PIPE

from jobfleet import keys, wire
from jobfleet.producer import Producer
from tests.ops.support import run_burst
from workers import history
from workers.history import HistoryWriter
from workers.last_runs import LastRuns


async def test_every_finished_job_joins_the_history_with_its_outcome(settings, deps, redis):
    producer = Producer(redis)
    ok = await producer.enqueue("fleet.sleep", {"ms": 1})
    await redis.set(keys.job_key_prefix + "bad", wire.job_document("fleet.sleep", {"ms": -1}, wire.now_ms()))
    await redis.set(keys.job_key_prefix + "ghost", wire.job_document("no.such_job", {}, wire.now_ms()))
    aborted = await producer.enqueue("fleet.noop", key="abort-me")
    await redis.zadd(keys.ABORT_JOBS, {aborted: wire.now_ms()})  # aborted before it starts
    await redis.zadd(keys.QUEUE_DEFAULT, {"bad": wire.now_ms(), "ghost": wire.now_ms()})

    await run_burst(settings, deps, redis)  # (arq's burst mode waits for deferred jobs too)
    later = await producer.enqueue("fleet.noop", defer_by=3600)

    total, entries = await history.page(redis)
    assert total == 4
    assert {(e.job_id, e.job, e.status) for e in entries} == {
        (ok, "fleet.sleep", "succeeded"),
        ("bad", "fleet.sleep", "failed"),
        ("ghost", "no.such_job", "failed"),
        (aborted, "fleet.noop", "aborted"),
    }
    assert [e.job_id for e in (await history.page(redis, status="failed"))[1]] in (
        ["ghost", "bad"],
        ["bad", "ghost"],
    )
    assert (await history.page(redis, job="fleet.sleep", status="succeeded"))[1][0].job_id == ok
    assert await history.find(redis, later, ["fleet.noop"]) is None


async def test_pages_with_a_time_window_are_rank_ranges(redis):
    async with redis.pipeline(transaction=False) as pipe:
        writer = HistoryWriter(redis, max_jobs=10_000)
        for i in range(100):
            writer.add(pipe, f"j{i}", "fleet.noop", "succeeded", 1000 + i)
        await pipe.execute()
    total, page = await history.page(redis, since_ms=1010, until_ms=1049, offset=5, limit=10)
    assert total == 40
    assert [e.finished_ms for e in page] == list(range(1044, 1034, -1))
    total, page = await history.page(redis, since_ms=1010, until_ms=1049, offset=35, limit=10)
    assert [e.finished_ms for e in page] == list(range(1014, 1009, -1))
    assert (await history.page(redis, since_ms=2000))[0] == 0


async def test_the_history_is_capped(redis, monkeypatch):
    monkeypatch.setattr(history, "TRIM_ONE_IN", 1)  # trim on every finish, to see the cap exactly
    writer = HistoryWriter(redis, max_jobs=100)
    for start in range(0, 300, 50):
        async with redis.pipeline(transaction=True) as pipe:
            for i in range(start, start + 50):
                writer.add(pipe, f"j{i}", "fleet.noop" if i % 2 else "fleet.sleep", "succeeded", 10_000 + i)
            await pipe.execute()
    assert await redis.zcard(keys.HISTORY_INDEX) == 100
    oldest = await redis.zrange(keys.HISTORY_INDEX, 0, 0, withscores=True)
    assert oldest[0][1] == 10_200
    # the per-name indexes are cut to the same horizon
    assert await redis.zcard(history.index_key("fleet.noop")) == 50
    assert await redis.zcard(history.index_key("fleet.noop", "succeeded")) == 50


async def test_a_sweep_records_its_last_run(settings, deps, redis, pg):
    await Producer(redis).enqueue("sessions.auto_complete", key="t1")
    await run_burst(settings, deps, redis, keys.QUEUE_SWEEPS)
    runs, successes = await LastRuns(redis).all()
    run = runs["sessions.auto_complete"]
    assert run["outcome"] == "succeeded" and run["job_id"] == "sessions.auto_complete:t1"
    assert run["counts"] == {"completed": 0, "pending_review": 0, "credits_consumed": 0}
    assert run["duration_s"] >= 0 and run["finished_at"] == successes["sessions.auto_complete"]


async def jobfleet(env, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", *args, env=env, stdout=PIPE, stderr=PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, out.decode(), err.decode()


async def test_status_prints_tables_and_json(settings, deps, redis, env):
    await redis.set(keys.job_key_prefix + "bad", wire.job_document("fleet.sleep", {"ms": -1}, wire.now_ms()))
    await redis.zadd(keys.QUEUE_DEFAULT, {"bad": wire.now_ms()})
    await run_burst(settings, deps, redis)
    await Producer(redis).enqueue("fleet.noop", defer_by=3600)

    code, out, err = await jobfleet(env, "status")
    assert code == 0, err
    assert "QUEUES" in out and "FAILED (newest 1 of 1)" in out and "SCHEDULES" in out
    assert any(line.split()[:3] == ["default", "0", "1"] for line in out.splitlines())
    assert "sessions.auto_complete" in out and "never" in out

    code, out, err = await jobfleet(env, "status", "--json")
    assert code == 0, err
    status = json.loads(out)
    assert status["failed_total"] == 1 and status["failed"][0]["job_id"] == "bad"
    assert {q["queue"]: q["deferred"] for q in status["queues"]} == {"default": 1, "sweeps": 0, "calendar": 0}
    assert status["last_hour"]["failed"] == 1


def test_the_dashboard_refuses_a_public_address_without_credentials(env):
    bare = {k: v for k, v in env.items() if not k.startswith("JOBFLEET_DASHBOARD_")}
    result = subprocess.run(
        [sys.executable, "-m", "cli", "dashboard", "--host", "0.0.0.0", "--port", "1"],
        env=bare,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "refusing to serve the dashboard on 0.0.0.0 without credentials" in result.stderr

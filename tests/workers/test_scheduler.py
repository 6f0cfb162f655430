"""Schedules: cron arithmetic, one enqueue per tick across schedulers, catch-up after downtime, and
two real worker processes running one schedule."""

import asyncio
import os
import signal
import sys
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

from jobfleet import keys
from jobfleet.catalog import CATALOG
from jobfleet.settings import load_settings
from workers.cron import Cron, CronError
from workers.scheduler import Schedule, ScheduleError, Scheduler, load_schedules


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_cron_previous_and_next():
    daily = Cron.parse("0 3 * * *")
    assert daily.previous(at("2026-11-22T02:59:59")) == at("2026-11-21T03:00:00")
    assert daily.previous(at("2026-11-22T03:00:00")) == at("2026-11-22T03:00:00")
    assert daily.next_after(at("2026-11-22T03:00:00")) == at("2026-11-23T03:00:00")
    hourly = Cron.parse("7 * * * *")
    assert hourly.previous(at("2026-11-22T10:06:00")) == at("2026-11-22T09:07:00")
    every_minute = Cron.parse("* * * * *")
    assert every_minute.previous(at("2026-11-22T10:06:31")) == at("2026-11-22T10:06:00")
    weekdays = Cron.parse("30 8 * * 1-5")  # 2026-11-22 is a Sunday
    assert weekdays.previous(at("2026-11-22T12:00:00")) == at("2026-11-20T08:30:00")
    assert weekdays.next_after(at("2026-11-22T12:00:00")) == at("2026-11-23T08:30:00")
    seconds = Cron.parse("*/2 * * * * *")
    assert seconds.previous(at("2026-11-22T10:00:03")) == at("2026-11-22T10:00:02")


@pytest.mark.parametrize("bad", ["* * *", "61 * * * *", "a * * * *", "*/0 * * * *", "5-1 * * * *"])
def test_bad_cron_is_refused_with_a_reason(bad):
    with pytest.raises(CronError):
        Cron.parse(bad)


def test_schedules_file_is_checked_at_load(tmp_path):
    assert {s.name for s in load_schedules(load_settings().schedules_file)} >= {"sessions.auto_complete"}
    bad = tmp_path / "s.toml"
    bad.write_text('["sessions.autocomplete"]\ncron = "* * * * *"\n')
    with pytest.raises(ScheduleError, match="names no job"):
        load_schedules(bad)
    bad.write_text('["sessions.auto_complete"]\ncron = "* * *"\n')
    with pytest.raises(ScheduleError, match="needs 5 fields"):
        load_schedules(bad)


async def test_each_tick_is_enqueued_once_across_schedulers(redis: Redis):
    schedule = Schedule(CATALOG["sessions.auto_complete"], Cron.parse("* * * * *"))
    a, b = Scheduler(redis, [schedule]), Scheduler(redis, [schedule])
    now = at("2026-11-22T10:00:30")

    results = await asyncio.gather(*(s.tick(now) for s in (a, b, a, b)))
    assert sum(len(r) for r in results) == 1
    assert results[0] + results[1] == ["sessions.auto_complete:tick-20261122T100000Z"]

    assert await a.tick(at("2026-11-22T10:00:59")) == []
    assert await b.tick(at("2026-11-22T10:01:00")) == ["sessions.auto_complete:tick-20261122T100100Z"]


async def test_a_missed_tick_runs_once_when_the_fleet_returns(redis: Redis):
    schedule = Schedule(CATALOG["telemetry.purge"], Cron.parse("0 3 * * *"))
    scheduler = Scheduler(redis, [schedule])
    assert await scheduler.tick(at("2026-11-20T03:00:05")) == ["telemetry.purge:tick-20261120T030000Z"]
    # the fleet was down from the 20th to the 22nd at noon: two ticks missed, one run on return
    assert await scheduler.tick(at("2026-11-22T12:00:00")) == ["telemetry.purge:tick-20261122T030000Z"]
    assert await scheduler.tick(at("2026-11-22T12:00:01")) == []
    assert await redis.zcard(keys.QUEUE_SWEEPS) == 2
    # a scheduler whose clock lags cannot move the claimed tick backwards
    assert await scheduler.tick(at("2026-11-21T12:00:00")) == []


async def test_two_worker_processes_run_each_tick_once(env, redis: Redis, tmp_path):
    schedules = tmp_path / "schedules.toml"
    schedules.write_text('["fleet.noop"]\ncron = "* * * * * *"\n')  # every second
    worker_env = {
        **env,
        "JOBFLEET_SCHEDULES_FILE": str(schedules),
        "JOBFLEET_SHUTDOWN_GRACE_S": "5",
        "JOBFLEET_HEALTH_INTERVAL_S": "0.5",
    }
    command = [sys.executable, "-m", "cli", "worker", "--queue", "default"]
    workers = [
        await asyncio.create_subprocess_exec(
            *command, env=worker_env, cwd=os.getcwd(), stdout=asyncio.subprocess.DEVNULL
        )
        for _ in range(2)
    ]

    async def ticks_run() -> list[bytes]:
        return [k async for k in redis.scan_iter(match=keys.result_key_prefix + "fleet.noop:tick-*")]

    try:
        async with asyncio.timeout(60):
            while len(await ticks_run()) < 4:
                await asyncio.sleep(0.2)
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        codes = [await asyncio.wait_for(w.wait(), 30) for w in workers]
    assert codes == [0, 0], "both workers stop cleanly on SIGTERM"

    ticks = await ticks_run()
    started = int((await redis.hget(keys.STATS_PREFIX + "fleet.noop", "started")) or 0)
    assert started == len(ticks), "every tick ran exactly once, on one of the two workers"

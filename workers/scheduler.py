"""Periodic sweeps: each tick is enqueued once across the fleet, and a tick missed while the fleet
was down is enqueued as soon as it is back.

Every worker process runs the scheduler. For each schedule it computes the latest tick at or before
now; one Lua script compares it with the last tick claimed in Redis and, only if it is newer, claims
it and enqueues the job with an id derived from the tick, in one atomic step. Any number of
schedulers can run: the first to see a tick enqueues it, the rest find it claimed. A fleet that was
down over several ticks runs the sweep once on return (a sweep handles everything due at once).
"""

import asyncio
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from jobfleet import keys, wire
from jobfleet.catalog import CATALOG, JobSpec
from jobfleet.producer import Job, Producer
from workers.cron import Cron, CronError

log = structlog.get_logger("jobfleet.scheduler")

_CLAIM_AND_ENQUEUE = """
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
if last >= tonumber(ARGV[5]) then return 0 end
redis.call('SET', KEYS[1], ARGV[5])
if redis.call('EXISTS', KEYS[2], KEYS[3]) > 0 then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[4])
return 1
"""


class ScheduleError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Schedule:
    spec: JobSpec
    cron: Cron

    @property
    def name(self) -> str:
        return self.spec.name


def load_schedules(path: Path) -> list[Schedule]:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ScheduleError(f"cannot read schedules from {path}: {e}") from None
    schedules = []
    for name, entry in data.items():
        if name not in CATALOG:
            raise ScheduleError(f"{path}: schedule {name!r} names no job in the catalog")
        if not isinstance(entry, dict) or set(entry) != {"cron"}:
            raise ScheduleError(f"{path}: schedule {name!r} must have exactly one key, cron")
        try:
            schedules.append(Schedule(CATALOG[name], Cron.parse(entry["cron"])))
        except CronError as e:
            raise ScheduleError(f"{path}: schedule {name!r}: {e}") from None
    return schedules


def tick_key(tick: datetime) -> str:
    return "tick-" + tick.strftime("%Y%m%dT%H%M%SZ")


class Scheduler:
    def __init__(self, redis: Redis, schedules: list[Schedule]) -> None:
        self.redis = redis
        self.schedules = schedules
        self.producer = Producer(redis)
        self._claim = redis.register_script(_CLAIM_AND_ENQUEUE)

    async def tick(self, now: datetime | None = None) -> list[str]:
        """Enqueue every schedule whose latest tick is not yet claimed; returns the job ids."""
        now = now or datetime.now(UTC)
        enqueued = []
        for schedule in self.schedules:
            due = schedule.cron.previous(now)
            due_ms = int(due.timestamp() * 1000)
            job_keys, args, job_id = self.producer.prepare(
                Job(schedule.name, {}, tick_key(due)), wire.now_ms()
            )
            claimed = await self._claim(
                keys=[keys.SCHEDULE_TICK_PREFIX + schedule.name, *job_keys],
                args=[*args, due_ms],
            )
            if claimed:
                log.info("schedule_enqueued", job=schedule.name, job_id=job_id, tick=due.isoformat())
                enqueued.append(job_id)
        return enqueued

    async def run(self, interval_s: float = 1.0) -> None:
        while True:
            try:
                await self.tick()
            except (RedisError, OSError) as e:
                log.warning("schedule_redis_unavailable", error=str(e))
            await asyncio.sleep(interval_s)

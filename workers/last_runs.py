"""The last run of each scheduled sweep: when, how long, how it ended and the counts it reported.

One JSON document per job in a hash, replaced by every run, and the time of the last success in a
second hash (the alert "has not succeeded within twice its period" reads it through /metrics).
"""

import time
from typing import Any

from redis.asyncio import Redis

from jobfleet import keys, wire


class LastRuns:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def record(
        self,
        job: str,
        *,
        job_id: str,
        job_try: int,
        started_at: float,
        duration_s: float,
        outcome: str,
        counts: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        finished_at = time.time()
        document = {
            "job_id": job_id,
            "try": job_try,
            "started_at": started_at,
            "finished_at": finished_at,
            "duration_s": round(duration_s, 3),
            "outcome": outcome,
            "counts": counts or {},
            "error": error,
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.SCHEDULE_LAST_RUN, job, wire.encode(document))
            if outcome == "succeeded":
                pipe.hset(keys.SCHEDULE_LAST_SUCCESS, job, finished_at)
            await pipe.execute()

    async def all(self) -> tuple[dict[str, dict[str, Any]], dict[str, float]]:
        """(last run per job, last success time per job)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.SCHEDULE_LAST_RUN)
            pipe.hgetall(keys.SCHEDULE_LAST_SUCCESS)
            runs, successes = await pipe.execute()
        return (
            {k.decode(): wire.decode(v) for k, v in runs.items()},
            {k.decode(): float(v) for k, v in successes.items()},
        )

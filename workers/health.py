"""Each worker process's own health record: heartbeat, queues, concurrency, counts, running jobs."""

import os
import socket
import time
import uuid

from redis.asyncio import Redis

from jobfleet import keys, wire
from workers.stats import Stats

VERSION = "0.1.0"


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Heartbeat:
    def __init__(
        self, redis: Redis, worker_id: str, queues: list[str], max_jobs: int, stats: Stats, interval_s: float
    ) -> None:
        self.redis = redis
        self.worker_id = worker_id
        self.queues = queues
        self.max_jobs = max_jobs
        self.stats = stats
        self.interval_s = interval_s
        self.started_at = time.time()

    def document(self) -> dict:
        return {
            "worker_id": self.worker_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "version": VERSION,
            "queues": self.queues,
            "concurrency": self.max_jobs,
            "started_at": self.started_at,
            "heartbeat": time.time(),
            "jobs": {outcome: self.stats.totals[outcome] for outcome in ("succeeded", "failed", "retried")},
            "running": [
                {"job_id": r.job_id, "job": r.job, "try": r.job_try, "queue": r.queue, "since": r.started_at}
                for r in self.stats.running.values()
            ],
        }

    async def beat(self) -> None:
        await self.stats.flush(self.redis)
        now = time.time()
        async with self.redis.pipeline(transaction=False) as pipe:
            # a record outlives three missed beats, then the worker counts as gone
            pipe.set(
                keys.WORKER_PREFIX + self.worker_id,
                wire.encode(self.document()),
                px=int(self.interval_s * 3000),
            )
            pipe.zadd(keys.WORKERS_INDEX, {self.worker_id: now})
            pipe.zremrangebyscore(keys.WORKERS_INDEX, "-inf", now - 24 * 3600)
            await pipe.execute()

    async def remove(self) -> None:
        await self.stats.flush(self.redis)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.WORKER_PREFIX + self.worker_id)
            pipe.zrem(keys.WORKERS_INDEX, self.worker_id)
            await pipe.execute()

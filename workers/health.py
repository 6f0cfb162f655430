"""Each worker process's own health record: heartbeat, queues, concurrency, counts, running jobs.

The record is also the worker's lease on its running jobs (workers/lease.py): it expires after
``LAPSE_BEATS`` missed beats, and then other workers recover the jobs it held.
"""

import os
import socket
import time
import uuid

from redis.asyncio import Redis

from jobfleet import keys, wire
from workers.claiming import worker_jobs_key
from workers.lease import LAPSE_BEATS
from workers.stats import Stats

VERSION = "0.1.0"

# A worker that stops cleanly leaves the index (and the dashboard's list of gone workers), unless
# it still holds jobs it could not give back: then the index keeps it for recovery to find.
_REMOVE = """
redis.call('DEL', KEYS[1])
if redis.call('EXISTS', KEYS[3]) == 0 then redis.call('ZREM', KEYS[2], ARGV[1]) end
"""


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
        self._remove = redis.register_script(_REMOVE)

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

    async def beat(self) -> float:
        """Write the record (renewing the lease); returns when the write was sent (monotonic)."""
        await self.stats.flush(self.redis)
        now = time.time()
        sent_at = time.monotonic()
        async with self.redis.pipeline(transaction=False) as pipe:
            # a record outlives three missed beats, then the worker counts as gone
            pipe.set(
                keys.WORKER_PREFIX + self.worker_id,
                wire.encode(self.document()),
                px=int(self.interval_s * LAPSE_BEATS * 1000),
            )
            pipe.zadd(keys.WORKERS_INDEX, {self.worker_id: now})
            pipe.zremrangebyscore(keys.WORKERS_INDEX, "-inf", now - 24 * 3600)
            await pipe.execute()
        return sent_at

    async def remove(self) -> None:
        await self.stats.flush(self.redis)
        await self._remove(
            keys=[keys.WORKER_PREFIX + self.worker_id, keys.WORKERS_INDEX, worker_jobs_key(self.worker_id)],
            args=[self.worker_id],
        )

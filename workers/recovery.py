"""Recovery: jobs held by a worker whose lease lapsed go back on their queues at once.

arq leaves a running job in its queue's sorted set and blocks it with an in-progress key that
lives for the job's timeout plus 10 s, so a job whose worker was killed waited up to an hour. Here
every claim records its worker (workers/claiming.py) and every worker renews its lease each beat
(workers/lease.py). Every half beat one live worker at a time (a token in Redis) scans the workers
index for lapsed leases that still hold jobs, and runs ``_RECOVER`` for each such worker: one Lua
call, atomic, so any number of workers may race on the same job. For each job it

- does nothing when the lease is alive again (a slow worker is not a dead one);
- forgets the job when the dead worker no longer holds it (already recovered, and perhaps claimed
  anew: the in-progress key names its holder), or when it finished (result kept, or gone from its
  queue);
- otherwise deletes the in-progress key, so the job is due at its old score and the next poll of
  any worker starts it. That run counts one more try (arq's retry counter counted the lost one);
  when tries run out arq fails the job, and the failure record says that the lease lapsed (the
  note written here). A job whose abort was requested starts only to be recorded as aborted (arq
  reads the abort set before running it).

Each recovery is logged, counted per job name (``/metrics``) and kept in a capped log for the
dashboard and ``jobfleet status``.
"""

import time

import structlog
from redis.asyncio import Redis

from jobfleet import keys, wire
from workers.claiming import worker_jobs_key

log = structlog.get_logger("jobfleet.recovery")

RECOVERIES_KEPT = 1000
NOTE_TTL_S = 24 * 3600
# KEYS: lease, job hash, recovery log, counts, then per job: in-progress, result, job, retry, note,
# and the job's queue (ARGV). ARGV: dead worker id, now ms, recovering worker id, log cap, note ttl
# ms, then per job: id, queue key. Every key is named by the caller (see README, Redis Cluster).
_RECOVER = """
if redis.call('EXISTS', KEYS[1]) == 1 then return {} end
local recovered = {}
local n = (#ARGV - 5) / 2
for j = 1, n do
  local id, queue = ARGV[4 + 2 * j], ARGV[5 + 2 * j]
  local k = 4 + 6 * (j - 1)
  if redis.call('HDEL', KEYS[2], id) == 1 and redis.call('GET', KEYS[k + 1]) == ARGV[1]
      and redis.call('EXISTS', KEYS[k + 2]) == 0 and redis.call('ZSCORE', KEYS[k + 6], id) then
    redis.call('DEL', KEYS[k + 1])
    local name = '<unknown>'
    local ok, doc = pcall(cjson.decode, redis.call('GET', KEYS[k + 3]) or '')
    if ok and type(doc) == 'table' and type(doc['f']) == 'string' then name = doc['f'] end
    local entry = cjson.encode({job_id = id, job = name, queue = queue, worker_id = ARGV[1],
      try = tonumber(redis.call('GET', KEYS[k + 4]) or '0'), recovered_by = ARGV[3],
      recovered_at = tonumber(ARGV[2]) / 1000})
    redis.call('ZADD', KEYS[3], ARGV[2], entry)
    redis.call('HINCRBY', KEYS[4], name, 1)
    redis.call('SET', KEYS[k + 5], entry, 'PX', ARGV[5])
    recovered[#recovered + 1] = entry
  end
end
redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -(tonumber(ARGV[4]) + 1))
return recovered
"""


def note_key(job_id: str) -> str:
    return keys.RECOVERED_PREFIX + job_id


class Recovery:
    def __init__(self, redis: Redis, worker_id: str, interval_s: float) -> None:
        self.redis = redis
        self.worker_id = worker_id
        self.interval_s = interval_s
        self._recover = redis.register_script(_RECOVER)

    @property
    def period_s(self) -> float:
        return self.interval_s / 2

    async def scan(self) -> list[dict]:
        """Recover the jobs of every lapsed lease; a no-op unless this worker holds the scan token.

        Each worker tries every half beat and the token expires after half a beat, so the fleet
        scans about twice per beat whatever the number of workers; a scan costs two round trips
        plus two per lapsed lease holding jobs.
        """
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(keys.RECOVERY_SCAN, self.worker_id, nx=True, px=max(int(self.period_s * 1000), 1))
            pipe.zrange(keys.WORKERS_INDEX, 0, -1)
            token, members = await pipe.execute()
        ids = [m.decode() for m in members if m.decode() != self.worker_id]
        if not token or not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for worker_id in ids:
                pipe.exists(keys.WORKER_PREFIX + worker_id)
                pipe.hlen(worker_jobs_key(worker_id))
            replies = await pipe.execute()
        lapsed = [w for i, w in enumerate(ids) if not replies[2 * i] and replies[2 * i + 1]]
        recovered = []
        for worker_id in lapsed:
            recovered += await self.recover(worker_id)
        return recovered

    async def recover(self, worker_id: str) -> list[dict]:
        """Put back the jobs ``worker_id`` holds, if its lease has lapsed; returns what was recovered."""
        held = {
            k.decode(): v.decode() for k, v in (await self.redis.hgetall(worker_jobs_key(worker_id))).items()
        }
        if not held:
            return []
        job_keys = [
            keys.WORKER_PREFIX + worker_id,
            worker_jobs_key(worker_id),
            keys.RECOVERIES,
            keys.RECOVERIES_COUNT,
        ]
        args: list[str | int] = [
            worker_id,
            int(time.time() * 1000),
            self.worker_id,
            RECOVERIES_KEPT,
            NOTE_TTL_S * 1000,
        ]
        for job_id, queue in held.items():
            job_keys += [
                keys.in_progress_key_prefix + job_id,
                keys.result_key_prefix + job_id,
                keys.job_key_prefix + job_id,
                keys.retry_key_prefix + job_id,
                note_key(job_id),
                queue,
            ]
            args += [job_id, queue]
        entries = [wire.decode(e) for e in await self._recover(keys=job_keys, args=args)]
        for e in entries:
            log.warning(
                "job_recovered",
                job=e["job"],
                job_id=e["job_id"],
                job_try=e["try"],
                queue=e["queue"],
                lost_worker_id=worker_id,
            )
        return entries


async def note(redis: Redis, job_id: str) -> dict | None:
    """The last recovery of ``job_id`` (kept a day), or None."""
    raw = await redis.get(note_key(job_id))
    return wire.decode(raw) if raw else None

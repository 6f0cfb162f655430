"""Claiming queued jobs: one Lua call takes a whole batch.

arq claims each job with its own WATCH/MULTI round trips; a worker polling a busy queue spends more
time on those than on no-op jobs. The script does the same checks for a batch at once: the job is
still queued and due, and no worker has it (its in-progress key is set only if absent, so two
workers never both take a job, and a producer's cancel, which touches that key, wins).

The claim also puts the job under the worker's lease (workers/lease.py) in the same step: the
in-progress key holds the worker's id, and the worker's job hash lists the job. So a worker killed
a microsecond after claiming leaves a job that recovery can find, at no extra round trip.
"""

from redis.asyncio import Redis

from jobfleet import keys

# KEYS: the queue, the worker's job hash, then one in-progress key per id in ARGV[5..]: every key
# is named by the caller (a move to Redis Cluster needs that, with hash tags).
_CLAIM = """
local claimed, limit = {}, tonumber(ARGV[3])
for i = 5, #ARGV do
  if #claimed >= 2 * limit then break end
  local id = ARGV[i]
  local score = redis.call('ZSCORE', KEYS[1], id)
  if score and tonumber(score) <= tonumber(ARGV[1]) then
    if redis.call('SET', KEYS[i - 2], ARGV[4], 'NX', 'PX', ARGV[2]) then
      redis.call('HSET', KEYS[2], id, KEYS[1])
      claimed[#claimed + 1] = id
      claimed[#claimed + 1] = score
    end
  end
end
if #claimed > 0 then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
return claimed
"""


def worker_jobs_key(worker_id: str) -> str:
    return keys.WORKER_JOBS_PREFIX + worker_id


class Claimer:
    def __init__(self, redis: Redis, queue: str, in_progress_ms: int, worker_id: str) -> None:
        self.queue = queue
        self.in_progress_ms = in_progress_ms
        self.worker_id = worker_id
        self.jobs_key = worker_jobs_key(worker_id)
        self._script = redis.register_script(_CLAIM)

    async def claim(self, job_ids: list[bytes], limit: int, now_ms: int) -> list[tuple[str, int]]:
        """Up to ``limit`` of the ids, claimed for this worker, with their scores."""
        if not job_ids or limit <= 0:
            return []
        in_progress = [keys.in_progress_key_prefix + i.decode() for i in job_ids]
        found = await self._script(
            keys=[self.queue, self.jobs_key, *in_progress],
            args=[now_ms, self.in_progress_ms, limit, self.worker_id, *job_ids],
        )
        return [(found[i].decode(), int(float(found[i + 1]))) for i in range(0, len(found), 2)]

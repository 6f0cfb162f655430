"""Claiming queued jobs: one Lua call takes a whole batch.

arq claims each job with its own WATCH/MULTI round trips; a worker polling a busy queue spends more
time on those than on no-op jobs. The script does the same checks for a batch at once: the job is
still queued and due, and no worker has it (its in-progress key is set only if absent, so two
workers never both take a job, and a producer's cancel, which touches that key, wins).
"""

from redis.asyncio import Redis

from jobfleet import keys

# Job ids arrive as arguments, so the keys are built here: a single Redis, not a cluster.
_CLAIM = f"""
local claimed, limit = {{}}, tonumber(ARGV[3])
for i = 4, #ARGV do
  if #claimed >= 2 * limit then break end
  local id = ARGV[i]
  local score = redis.call('ZSCORE', KEYS[1], id)
  if score and tonumber(score) <= tonumber(ARGV[1]) then
    if redis.call('SET', '{keys.in_progress_key_prefix}' .. id, '1', 'NX', 'PX', ARGV[2]) then
      claimed[#claimed + 1] = id
      claimed[#claimed + 1] = score
    end
  end
end
return claimed
"""


class Claimer:
    def __init__(self, redis: Redis, queue: str, in_progress_ms: int) -> None:
        self.queue = queue
        self.in_progress_ms = in_progress_ms
        self._script = redis.register_script(_CLAIM)

    async def claim(self, job_ids: list[bytes], limit: int, now_ms: int) -> list[tuple[str, int]]:
        """Up to ``limit`` of the ids, claimed for this worker, with their scores."""
        if not job_ids or limit <= 0:
            return []
        found = await self._script(keys=[self.queue], args=[now_ms, self.in_progress_ms, limit, *job_ids])
        return [(found[i].decode(), int(float(found[i + 1]))) for i in range(0, len(found), 2)]

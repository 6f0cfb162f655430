"""Claiming queued jobs: one Lua call reads the due jobs and takes a whole batch.

arq reads the queue in one round trip, then claims each job with its own WATCH/MULTI round trips;
a worker polling a busy queue spends more time on those than on no-op jobs. The script does the
same for a batch at once: it reads the due jobs (score up to now, oldest first, as arq does) and
takes those no worker has (the in-progress key is set only if absent, so two workers never both
take a job, and a producer's cancel, which touches that key, wins).
"""

from redis.asyncio import Redis

from jobfleet import keys

# Job ids are read inside the script, so the keys are built here: a single Redis, not a cluster.
# Returns how many due jobs it saw, then id, score pairs of those it claimed.
_CLAIM_DUE = f"""
local claimed, limit = {{}}, tonumber(ARGV[3])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[4]))
for i = 1, #due, 2 do
  if #claimed >= 2 * limit then break end
  local id = due[i]
  if redis.call('SET', '{keys.in_progress_key_prefix}' .. id, '1', 'NX', 'PX', ARGV[2]) then
    claimed[#claimed + 1] = id
    claimed[#claimed + 1] = due[i + 1]
  end
end
table.insert(claimed, 1, #due / 2)
return claimed
"""


class Claimer:
    def __init__(self, redis: Redis, queue: str, in_progress_ms: int) -> None:
        self.queue = queue
        self.in_progress_ms = in_progress_ms
        self._due_script = redis.register_script(_CLAIM_DUE)

    async def claim_due(self, limit: int, read_limit: int, now_ms: int) -> tuple[int, list[tuple[str, int]]]:
        """(due jobs seen, up to ``limit`` of them claimed for this worker with their scores)."""
        if limit <= 0:
            return 0, []
        args = [now_ms, self.in_progress_ms, limit, read_limit]
        found = await self._due_script(keys=[self.queue], args=args)
        seen, pairs = int(found[0]), found[1:]
        return seen, [(pairs[i].decode(), int(float(pairs[i + 1]))) for i in range(0, len(pairs), 2)]

"""A worker's lease on its running jobs, and the fence that stops them when it cannot renew it.

The lease is the worker's heartbeat record (workers/health.py): written every beat, it expires
after ``LAPSE_BEATS`` missed beats, and then any live worker may put the worker's jobs back on
their queues (workers/recovery.py). A worker that cannot renew its lease (Redis unreachable from
it, or its event loop stalled) must have stopped those jobs before that moment, or a job could run
twice at once. So the fence cancels the worker's running jobs after ``FENCE_BEATS`` beats without a
renewal, one beat before the lease can lapse, and the worker claims nothing until it renews again.

The fence is a plain timer callback, not a task: after a stall (SIGSTOP, a blocking call) the loop
runs overdue timers in the same iteration as the I/O that woke it, so the cancellation reaches a job
before the job's next step runs.

A fenced job's finish writes nothing (its lease may have been taken over); its in-progress key and
its place in the worker's job hash are released by the first renewal after the fence, and only
where this worker still holds them.
"""

import asyncio
import time
from collections.abc import Callable

import structlog
from redis.asyncio import Redis

from jobfleet import keys
from workers.claiming import worker_jobs_key

log = structlog.get_logger("jobfleet.lease")

LAPSE_BEATS = 3  # a heartbeat record outlives this many missed beats: then the lease has lapsed
FENCE_BEATS = 2  # a worker stops its jobs after this many beats without a renewal
CHECKS_PER_BEAT = 4  # how often the fence looks at the clock

# KEYS: the worker's job hash, then one in-progress key per job id in ARGV[2..].
_RELEASE = """
local released = 0
for i = 2, #ARGV do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('DEL', KEYS[i])
    released = released + 1
  end
  redis.call('HDEL', KEYS[1], ARGV[i])
end
return released
"""


class Lease:
    def __init__(
        self, redis: Redis, worker_id: str, interval_s: float, fence: Callable[[], list[str]]
    ) -> None:
        self.worker_id = worker_id
        self.interval_s = interval_s
        self.jobs_key = worker_jobs_key(worker_id)
        self._fence_jobs = fence
        self._release = redis.register_script(_RELEASE)
        self.renewed_at = time.monotonic()
        self.fenced = False
        self.unreleased: set[str] = set()  # fenced jobs whose keys this worker still has to release
        self._timer: asyncio.TimerHandle | None = None

    @property
    def ttl_ms(self) -> int:
        return int(self.interval_s * LAPSE_BEATS * 1000)

    def start(self) -> None:
        self.renewed_at = time.monotonic()
        self._schedule()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.interval_s / CHECKS_PER_BEAT, self._check)

    def _check(self) -> None:
        self._schedule()
        unrenewed_s = time.monotonic() - self.renewed_at
        if self.fenced or unrenewed_s < self.interval_s * FENCE_BEATS:
            return
        self.fenced = True
        cancelled = self._fence_jobs()
        self.unreleased.update(cancelled)
        log.error(
            "lease_not_renewed_jobs_stopped",
            worker_id=self.worker_id,
            unrenewed_s=round(unrenewed_s, 2),
            lapses_in_s=round(self.interval_s * LAPSE_BEATS - unrenewed_s, 2),
            jobs=cancelled,
        )

    def lapsing(self) -> bool:
        """True once the fence's deadline has passed, even if the fence's timer has not run yet
        (a loop waking from a stall may run a job's next step first)."""
        return self.fenced or time.monotonic() - self.renewed_at >= self.interval_s * FENCE_BEATS

    def renewed(self, sent_at: float) -> None:
        """The record was written by a command sent at ``sent_at`` (monotonic): Redis started its
        expiry no earlier than that, so counting from there errs on the safe side."""
        self.renewed_at = max(self.renewed_at, sent_at)
        if self.fenced and time.monotonic() - self.renewed_at < self.interval_s * FENCE_BEATS:
            self.fenced = False
            log.warning("lease_renewed", worker_id=self.worker_id)

    async def release_fenced(self) -> None:
        """Give back the keys of jobs the fence stopped, where no other worker has taken them."""
        if not self.unreleased:
            return
        ids = sorted(self.unreleased)
        released = await self._release(
            keys=[self.jobs_key, *(keys.in_progress_key_prefix + i for i in ids)], args=[self.worker_id, *ids]
        )
        self.unreleased.difference_update(ids)
        log.info("fenced_jobs_released", worker_id=self.worker_id, jobs=ids, requeued=released)

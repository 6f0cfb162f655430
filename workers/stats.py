"""Job counters, kept in memory per process and added to Redis by the heartbeat.

Every process adds its deltas to the same Redis hashes, so the totals (and /metrics, which reads
them) are right however many worker processes run.
"""

import time
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field

from redis.asyncio import Redis

from jobfleet import keys

DURATION_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
MINUTE_BUCKET_TTL_S = 26 * 3600
HOUR_BUCKET_TTL_S = 8 * 24 * 3600
OUTCOMES = ("started", "succeeded", "failed", "retried")


@dataclass(frozen=True, slots=True)
class RunningJob:
    job_id: str
    job: str
    job_try: int
    queue: str
    started_at: float


@dataclass
class Stats:
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    duration_sum_s: Counter[str] = field(default_factory=Counter)
    durations: Counter[tuple[str, int]] = field(default_factory=Counter)  # (job, bucket index)
    running: dict[str, RunningJob] = field(default_factory=dict)
    totals: Counter[str] = field(default_factory=Counter)  # this process, for its health record
    # job id -> (job, outcome) of runs that ended for good, until the worker's finish_job takes it
    finished: dict[str, tuple[str, str]] = field(default_factory=dict)

    def started(self, job: RunningJob) -> None:
        self.running[job.job_id] = job
        self.counts[(job.job, "started")] += 1

    def ended(
        self, job_id: str, job: str, outcome: str, duration_s: float, rows: dict[str, int] | None = None
    ) -> None:
        self.running.pop(job_id, None)
        if outcome != "retried":
            self.finished[job_id] = (job, outcome)
        self.counts[(job, outcome)] += 1
        self.totals[outcome] += 1
        self.duration_sum_s[job] += duration_s
        self.counts[(job, "duration_count")] += 1
        # one counter per job here; the flush spreads it over the cumulative buckets
        self.durations[(job, bisect_left(DURATION_BUCKETS_S, duration_s))] += 1
        for name, n in (rows or {}).items():
            if isinstance(n, int):
                self.counts[(job, f"rows:{name}")] += n

    def _cumulative_buckets(self) -> None:
        durations, self.durations = self.durations, Counter()
        for (job, index), n in durations.items():
            for bound in DURATION_BUCKETS_S[index:]:
                self.counts[(job, f"le:{bound}")] += n

    async def flush(self, redis: Redis) -> None:
        self._cumulative_buckets()
        if not self.counts and not self.duration_sum_s:
            return
        counts, self.counts = self.counts, Counter()
        sums, self.duration_sum_s = self.duration_sum_s, Counter()
        now = time.time()
        minute_key = f"{keys.STATS_MINUTE_PREFIX}{int(now // 60)}"
        hour_key = f"{keys.STATS_HOUR_PREFIX}{int(now // 3600)}"
        try:
            async with redis.pipeline(transaction=False) as pipe:
                for (job, name), n in counts.items():
                    pipe.hincrby(keys.STATS_PREFIX + job, name, n)
                    if name in OUTCOMES:
                        pipe.hincrby(minute_key, f"{job}|{name}", n)
                        pipe.hincrby(hour_key, f"{job}|{name}", n)
                for job, s in sums.items():
                    pipe.hincrbyfloat(keys.STATS_PREFIX + job, "duration_sum", s)
                pipe.expire(minute_key, MINUTE_BUCKET_TTL_S)
                pipe.expire(hour_key, HOUR_BUCKET_TTL_S)
                pipe.sadd(keys.STATS_PREFIX + "jobs", *{job for job, _ in counts} | set(sums))
                await pipe.execute()
        except Exception:
            # Redis away: keep the deltas for the next beat rather than losing them.
            self.counts.update(counts)
            self.duration_sum_s.update(sums)
            raise

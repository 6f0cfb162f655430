"""The job history: every finished job's id, name, status and finish time, searchable in pages.

arq forgets a job once its result expires and keeps no list of results at all. The fleet adds each
finished job to four sorted sets scored by finish time (ms): all jobs, per job name, per status,
and per name and status. The writes join the worker's own finish transaction, so the history costs
no extra round trip. A page is a ZREVRANGE by rank, found in O(log n) even with a time filter.

The index holding all jobs is capped at ``max_jobs``; now and then a finish trims it and cuts the
other indexes it touched to the same time horizon.
"""

import random
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from jobfleet import keys

STATUSES = ("succeeded", "failed", "aborted")
# One finish in this many also trims: the indexes overshoot their cap by about this much at most.
TRIM_ONE_IN = 64

_TRIM = """
local cap = tonumber(ARGV[1])
local cut = redis.call('ZRANGE', KEYS[1], -(cap + 1), -(cap + 1), 'WITHSCORES')
if #cut == 0 then return 0 end
for i = 1, #KEYS do redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', cut[2]) end
return 1
"""


@dataclass(frozen=True, slots=True)
class Entry:
    job_id: str
    job: str
    status: str
    finished_ms: int


def member(status: str, job: str, job_id: str) -> str:
    return f"{status}|{job}|{job_id}"


def parse(raw: bytes | str, score: float) -> Entry:
    text = raw.decode() if isinstance(raw, bytes) else raw
    status, job, job_id = text.split("|", 2)
    return Entry(job_id, job, status, int(score))


def index_key(job: str | None = None, status: str | None = None) -> str:
    if job and status:
        return f"{keys.HISTORY_PREFIX}job-status:{job}:{status}"
    if job:
        return f"{keys.HISTORY_PREFIX}job:{job}"
    if status:
        return f"{keys.HISTORY_PREFIX}status:{status}"
    return keys.HISTORY_INDEX


class HistoryWriter:
    """Adds finished jobs to the history inside a pipeline the caller executes."""

    def __init__(self, redis: Redis, max_jobs: int) -> None:
        self.max_jobs = max_jobs
        self._trim = redis.register_script(_TRIM)

    def add(self, pipe: Pipeline, job_id: str, job: str, status: str, finished_ms: int) -> None:
        entry = {member(status, job, job_id): finished_ms}
        index_keys = [index_key(), index_key(job), index_key(status=status), index_key(job, status)]
        for key in index_keys:
            pipe.zadd(key, entry)
        if random.random() * TRIM_ONE_IN < 1:
            # queued in the same transaction: the pipeline loads the script first if Redis lacks it
            pipe.evalsha(self._trim.sha, len(index_keys), *index_keys, self.max_jobs)
            pipe.scripts.add(self._trim)


async def page(
    redis: Redis,
    *,
    job: str | None = None,
    status: str | None = None,
    since_ms: int | None = None,
    until_ms: int | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[int, list[Entry]]:
    """Newest first: (how many match, this page). Three commands whatever the index's size."""
    key = index_key(job, status)
    low = since_ms if since_ms is not None else "-inf"
    high = until_ms if until_ms is not None else "+inf"
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zcount(key, f"({high}", "+inf")  # newer than the window: where its ranks start
        pipe.zcount(key, low, high)
        newer, total = await pipe.execute()
    start = newer + offset
    end = min(start + limit, newer + total) - 1
    if end < start:
        return total, []
    rows: list[Any] = await redis.zrevrange(key, start, end, withscores=True)
    return total, [parse(m, s) for m, s in rows]


async def find(redis: Redis, job_id: str, names: list[str]) -> Entry | None:
    """The latest history entry of a job id under any of ``names``: one round trip."""
    candidates = [(name, status) for name in names for status in STATUSES]
    async with redis.pipeline(transaction=False) as pipe:
        for name, status in candidates:
            pipe.zscore(index_key(name, status), member(status, name, job_id))
        scores = await pipe.execute()
    found = [(s, c) for s, c in zip(scores, candidates, strict=True) if s is not None]
    if not found:
        return None
    score, (name, status) = max(found)
    return Entry(job_id, name, status, int(score))

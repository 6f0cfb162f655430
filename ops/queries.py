"""What the dashboard, /metrics and ``jobfleet status`` read from Redis.

Every read costs a bounded number of commands, whatever the number of jobs: queue counts are
ZCOUNTs, pages are rank ranges of sorted sets, details are MGETs of the ids on the page. Nothing
here uses KEYS or SCAN.
"""

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from jobfleet import keys, wire
from jobfleet.catalog import CATALOG
from workers import history
from workers.claiming import worker_jobs_key
from workers.last_runs import LastRuns
from workers.scheduler import Schedule
from workers.stats import DURATION_BUCKETS_S

QUEUE_NAMES = {queue: alias for alias, queue in keys.QUEUE_ALIASES.items()}
# A name filter over queued jobs (which have no per-name index) looks at this many at most.
QUEUED_SEARCH_WINDOW = 2000


def _s(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _json(raw: bytes | None) -> Any:
    if raw is None:
        return None
    try:
        return wire.decode(raw)
    except ValueError:
        return None


# Workers ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkerState:
    worker_id: str
    last_seen: float
    document: dict[str, Any] | None  # None: its record expired, the worker is gone

    @property
    def alive(self) -> bool:
        return self.document is not None

    @property
    def running(self) -> list[dict[str, Any]]:
        return (self.document or {}).get("running", [])


async def workers(redis: Redis) -> list[WorkerState]:
    """Every worker seen in the last day (the index prunes older ones): two commands."""
    ids = await redis.zrevrange(keys.WORKERS_INDEX, 0, -1, withscores=True)
    if not ids:
        return []
    docs = await redis.mget([keys.WORKER_PREFIX + _s(i) for i, _ in ids])
    return [WorkerState(_s(i), score, _json(doc)) for (i, score), doc in zip(ids, docs, strict=True)]


def running_jobs(states: list[WorkerState]) -> list[dict[str, Any]]:
    jobs = [{**job, "worker_id": w.worker_id} for w in states for job in w.running]
    return sorted(jobs, key=lambda j: j["since"])


# Queues ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueState:
    key: str
    name: str
    queued: int  # due now and waiting for a worker
    deferred: int  # scheduled for later (deferred enqueues, retries in backoff)
    in_progress: int
    oldest_age_s: float  # of the oldest job waiting; 0 when none waits


async def queues(redis: Redis, states: list[WorkerState], now_ms: int | None = None) -> list[QueueState]:
    """Three commands per queue. arq leaves a running job in its queue's sorted set until it
    finishes, so the jobs the workers report running are taken out of the due ones."""
    now_ms = now_ms or wire.now_ms()
    running: dict[str, set[str]] = {q: set() for q in keys.ALL_QUEUES}
    for job in running_jobs(states):
        running.setdefault(job["queue"], set()).add(job["job_id"])
    async with redis.pipeline(transaction=False) as pipe:
        for queue in keys.ALL_QUEUES:
            pipe.zcount(queue, "-inf", now_ms)
            pipe.zcount(queue, f"({now_ms}", "+inf")
            pipe.zrangebyscore(queue, "-inf", now_ms, start=0, num=len(running[queue]) + 1, withscores=True)
        replies = await pipe.execute()
    result = []
    for i, queue in enumerate(keys.ALL_QUEUES):
        due, deferred, head = replies[3 * i : 3 * i + 3]
        in_progress = len(running[queue])
        waiting = [score for job_id, score in head if _s(job_id) not in running[queue]]
        oldest = max(now_ms - waiting[0], 0) / 1000 if waiting else 0.0
        result.append(
            QueueState(
                queue, QUEUE_NAMES.get(queue, queue), max(due - in_progress, 0), deferred, in_progress, oldest
            )
        )
    return result


# Throughput ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bucket:
    start: float  # epoch seconds
    succeeded: int = 0
    failed: int = 0
    retried: int = 0


@dataclass(frozen=True, slots=True)
class Throughput:
    minutes: list[Bucket]  # the last 60 minutes, oldest first
    hours: list[Bucket]  # the last 24 hours, oldest first
    per_job_hour: dict[str, dict[str, int]] = field(default_factory=dict)

    @staticmethod
    def _sum(buckets: list[Bucket]) -> tuple[int, int]:
        return sum(b.succeeded for b in buckets), sum(b.failed for b in buckets)

    def rate(self, window: str) -> dict[str, float]:
        ok, failed = self._sum(self.minutes if window == "hour" else self.hours)
        done = ok + failed
        return {"succeeded": ok, "failed": failed, "failure_rate": failed / done if done else 0.0}


def _bucket(start: float, fields: dict[bytes, bytes]) -> tuple[Bucket, dict[str, dict[str, int]]]:
    totals = {"succeeded": 0, "failed": 0, "retried": 0}
    per_job: dict[str, dict[str, int]] = {}
    for raw_field, raw_n in fields.items():
        job, _, outcome = raw_field.decode().rpartition("|")
        if outcome in totals:
            totals[outcome] += int(raw_n)
            per_job.setdefault(job, {}).setdefault(outcome, 0)
            per_job[job][outcome] += int(raw_n)
    return Bucket(start, **totals), per_job


async def throughput(redis: Redis, now: float | None = None) -> Throughput:
    """60 minute buckets and 24 hour buckets: 84 HGETALLs in one round trip."""
    now = now or time.time()
    minute, hour = int(now // 60), int(now // 3600)
    minutes = range(minute - 59, minute + 1)
    hours = range(hour - 23, hour + 1)
    async with redis.pipeline(transaction=False) as pipe:
        for m in minutes:
            pipe.hgetall(f"{keys.STATS_MINUTE_PREFIX}{m}")
        for h in hours:
            pipe.hgetall(f"{keys.STATS_HOUR_PREFIX}{h}")
        replies = await pipe.execute()
    minute_buckets = [_bucket(m * 60, r)[0] for m, r in zip(minutes, replies[:60], strict=True)]
    per_job: dict[str, dict[str, int]] = {}
    for m, r in zip(minutes, replies[:60], strict=True):
        for job, counts in _bucket(m * 60, r)[1].items():
            for outcome, n in counts.items():
                per_job.setdefault(job, {}).setdefault(outcome, 0)
                per_job[job][outcome] += n
    hour_buckets = [_bucket(h * 3600, r)[0] for h, r in zip(hours, replies[60:], strict=True)]
    return Throughput(minute_buckets, hour_buckets, per_job)


# Counters (for /metrics) -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobCounters:
    job: str
    counts: dict[str, float]

    def get(self, name: str) -> float:
        return self.counts.get(name, 0)

    @property
    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative histogram buckets, as the stats count them, ending with +Inf."""
        return [(str(b), self.get(f"le:{b}")) for b in DURATION_BUCKETS_S] + [
            ("+Inf", self.get("duration_count"))
        ]

    @property
    def rows(self) -> dict[str, float]:
        return {k.removeprefix("rows:"): v for k, v in self.counts.items() if k.startswith("rows:")}


async def counters(redis: Redis) -> list[JobCounters]:
    names = sorted(_s(n) for n in await redis.smembers(keys.STATS_PREFIX + "jobs"))
    if not names:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hgetall(keys.STATS_PREFIX + name)
        replies = await pipe.execute()
    return [
        JobCounters(name, {k.decode(): float(v) for k, v in reply.items()})
        for name, reply in zip(names, replies, strict=True)
    ]


# Schedules -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScheduleState:
    name: str
    cron: str
    queue: str
    next_run: datetime
    period_s: float
    last_run: dict[str, Any] | None
    last_success_at: float | None


async def schedules(
    redis: Redis, configured: list[Schedule], now: datetime | None = None
) -> list[ScheduleState]:
    now = now or datetime.now(UTC)
    runs, successes = await LastRuns(redis).all()
    result = []
    for s in configured:
        next_run = s.cron.next_after(now)
        result.append(
            ScheduleState(
                s.name,
                s.cron.expression,
                QUEUE_NAMES.get(s.spec.queue, s.spec.queue),
                next_run,
                (s.cron.next_after(next_run) - next_run).total_seconds(),
                runs.get(s.name),
                successes.get(s.name),
            )
        )
    return result


# Jobs ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobRow:
    job_id: str
    job: str
    status: str
    queue: str | None = None
    at_ms: int | None = None  # finish time, or the time to run for a waiting job
    tries: int | None = None
    duration_s: float | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class JobPage:
    total: int
    rows: list[JobRow]
    note: str | None = None


def _result_details(result: Any) -> dict[str, Any]:
    if not isinstance(result, dict):
        return {}
    details: dict[str, Any] = {
        "tries": result.get("t"),
        "queue": QUEUE_NAMES.get(result.get("q"), result.get("q")),
    }
    if result.get("st") and result.get("ft"):
        details["duration_s"] = (result["ft"] - result["st"]) / 1000
    if not result.get("s") and isinstance(result.get("r"), dict):
        details["error"] = f"{result['r'].get('error')}: {result['r'].get('message')}".rstrip(": ")
    return details


async def finished_jobs(
    redis: Redis,
    *,
    job: str | None,
    status: str | None,
    since_ms: int | None,
    until_ms: int | None,
    offset: int,
    limit: int,
) -> JobPage:
    total, entries = await history.page(
        redis, job=job, status=status, since_ms=since_ms, until_ms=until_ms, offset=offset, limit=limit
    )
    results = await redis.mget([keys.result_key_prefix + e.job_id for e in entries]) if entries else []
    rows = [
        JobRow(e.job_id, e.job, e.status, at_ms=e.finished_ms, **_result_details(_json(r)))
        for e, r in zip(entries, results, strict=True)
    ]
    return JobPage(total, rows)


async def waiting_jobs(
    redis: Redis,
    *,
    queue: str,
    deferred: bool,
    job: str | None,
    offset: int,
    limit: int,
    now_ms: int | None = None,
) -> JobPage:
    """Jobs waiting in one queue, by time to run. Due jobs hold the lowest ranks, deferred ones
    the rest, so either page is a rank range. Queues keep no per-name index: a name filter looks
    through the first ``QUEUED_SEARCH_WINDOW`` jobs only, and says so."""
    now_ms = now_ms or wire.now_ms()
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zcount(queue, "-inf", now_ms)
        pipe.zcard(queue)
        due, card = await pipe.execute()
    first, total = (due, card - due) if deferred else (0, due)
    name = QUEUE_NAMES.get(queue, queue)
    status = "deferred" if deferred else "queued"
    if job is None:
        ids = await redis.zrange(
            queue, first + offset, first + min(offset + limit, total) - 1, withscores=True
        )
        docs = await redis.mget([keys.job_key_prefix + _s(i) for i, _ in ids]) if ids else []
        rows = [_waiting_row(i, score, doc, name, status) for (i, score), doc in zip(ids, docs, strict=True)]
        return JobPage(total, rows)
    matches: list[JobRow] = []
    window = min(total, QUEUED_SEARCH_WINDOW)
    for start in range(0, window, 500):
        ids = await redis.zrange(queue, first + start, first + min(start + 500, window) - 1, withscores=True)
        docs = await redis.mget([keys.job_key_prefix + _s(i) for i, _ in ids])
        matches += [
            row
            for (i, score), doc in zip(ids, docs, strict=True)
            if (row := _waiting_row(i, score, doc, name, status)).job == job
        ]
    note = (
        f"searched the first {window} of {total} {status} jobs in {name}: queues keep no index by name"
        if total > window
        else None
    )
    return JobPage(len(matches), matches[offset : offset + limit], note)


def _waiting_row(job_id: bytes, score: float, doc: bytes | None, queue: str, status: str) -> JobRow:
    document = _json(doc) or {}
    return JobRow(_s(job_id), document.get("f") or "?", status, queue, int(score), document.get("t"))


@dataclass
class JobDetail:
    job_id: str
    job: str | None = None
    status: str = "unknown"
    queue: str | None = None
    payload: Any = None
    tries: int | None = None
    enqueued_ms: int | None = None
    run_at_ms: int | None = None
    started_ms: int | None = None
    finished_ms: int | None = None
    result: Any = None
    error: str | None = None
    traceback: str | None = None
    raw: str | None = None
    worker_id: str | None = None
    running_since: float | None = None
    in_failure_record: bool = False
    abort_requested: bool = False
    trace_id: str | None = None  # the producer's trace, which the job's runs join

    @property
    def duration_s(self) -> float | None:
        if self.started_ms and self.finished_ms:
            return (self.finished_ms - self.started_ms) / 1000
        return None


async def job_detail(redis: Redis, job_id: str, states: list[WorkerState]) -> JobDetail | None:
    """Everything known about one job: its queued document, kept result, failure record and
    history entry. A fixed number of commands."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.get(keys.job_key_prefix + job_id)
        pipe.get(keys.result_key_prefix + job_id)
        pipe.exists(keys.in_progress_key_prefix + job_id)
        pipe.get(keys.FAILED_PREFIX + job_id)
        pipe.zscore(keys.ABORT_JOBS, job_id)
        for queue in keys.ALL_QUEUES:
            pipe.zscore(queue, job_id)
        doc, result, in_progress, failure, abort, *scores = await pipe.execute()
    detail = JobDetail(job_id, abort_requested=abort is not None)
    if (document := _json(doc)) is not None:
        detail.job, detail.payload, detail.tries = document.get("f"), document.get("k"), document.get("t")
        detail.enqueued_ms = document.get("et")
        detail.trace_id = wire.trace_id(document.get("tc"))
    for queue, score in zip(keys.ALL_QUEUES, scores, strict=True):
        if score is not None:
            detail.queue, detail.run_at_ms = QUEUE_NAMES[queue], int(score)
            detail.status = "deferred" if score > wire.now_ms() else "queued"
    if (kept := _json(result)) is not None and isinstance(kept, dict):
        detail.job = detail.job or kept.get("f")
        detail.payload = detail.payload if detail.payload is not None else kept.get("k")
        detail.tries = kept.get("t")
        detail.enqueued_ms, detail.started_ms, detail.finished_ms = (
            kept.get("et"),
            kept.get("st"),
            kept.get("ft"),
        )
        detail.queue = QUEUE_NAMES.get(kept.get("q"), kept.get("q"))
        detail.trace_id = detail.trace_id or wire.trace_id(kept.get("tc"))
        if kept.get("s"):
            detail.status, detail.result = "succeeded", kept.get("r")
        else:
            detail.error = _result_details(kept).get("error") or str(kept.get("r"))
            detail.status = "aborted" if detail.error.startswith("CancelledError") else "failed"
    if (record := _json(failure)) is not None:
        detail.in_failure_record = True
        detail.status = "failed" if detail.status in ("unknown", "failed") else detail.status
        detail.job = detail.job or record.get("job")
        detail.payload = detail.payload if detail.payload is not None else record.get("payload")
        detail.tries = detail.tries or record.get("tries")
        detail.error, detail.traceback, detail.raw = (
            record.get("error"),
            record.get("traceback"),
            record.get("raw"),
        )
        detail.queue = detail.queue or QUEUE_NAMES.get(record.get("queue"), record.get("queue"))
        failed_at = datetime.fromisoformat(record["failed_at"]) if record.get("failed_at") else None
        detail.finished_ms = detail.finished_ms or (int(failed_at.timestamp() * 1000) if failed_at else None)
    if in_progress:
        detail.status = "in_progress"
        for job in running_jobs(states):
            if job["job_id"] == job_id:
                detail.worker_id, detail.running_since = job["worker_id"], job["since"]
    if detail.status == "unknown":
        entry = await _history_entry(redis, job_id, detail.job)
        if entry is None:
            return None if detail.job is None else detail
        detail.job, detail.status, detail.finished_ms = entry.job, entry.status, entry.finished_ms
    return detail


async def _history_entry(redis: Redis, job_id: str, job: str | None) -> history.Entry | None:
    # The id of a keyed job starts with its name; otherwise every known name is asked at once.
    names = [job] if job else [n for n in CATALOG if job_id.startswith(n + ":")] or list(CATALOG)
    return await history.find(redis, job_id, names)


# Recoveries ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Recoveries:
    # jobs held by workers whose lease lapsed, not recovered yet (a live worker's next beat will)
    orphaned: list[dict[str, Any]]
    recent: list[dict[str, Any]]  # the newest recoveries first: job, lost worker, try, when
    counts: dict[str, int]  # recoveries per job name, ever


async def recoveries(redis: Redis, states: list[WorkerState], limit: int = 50) -> Recoveries:
    """Two round trips plus one per gone worker, whatever the number of jobs."""
    gone = [w for w in states if not w.alive]
    async with redis.pipeline(transaction=False) as pipe:
        for w in gone:
            pipe.hgetall(worker_jobs_key(w.worker_id))
        pipe.zrevrange(keys.RECOVERIES, 0, max(limit, 1) - 1)
        pipe.hgetall(keys.RECOVERIES_COUNT)
        *held, recent, counts = await pipe.execute()
    orphaned = [
        {"job_id": _s(job_id), "queue": _s(queue), "worker_id": w.worker_id, "last_beat": w.last_seen}
        for w, jobs in zip(gone, held, strict=True)
        for job_id, queue in jobs.items()
    ]
    if orphaned:
        docs = await redis.mget([keys.job_key_prefix + o["job_id"] for o in orphaned])
        for o, doc in zip(orphaned, docs, strict=True):
            o["job"] = (_json(doc) or {}).get("f", "<unknown>") if doc else "<gone>"
    return Recoveries(
        orphaned=sorted(orphaned, key=lambda o: o["last_beat"]),
        recent=[e for e in map(_json, recent) if isinstance(e, dict)],
        counts={_s(k): int(v) for k, v in counts.items()},
    )

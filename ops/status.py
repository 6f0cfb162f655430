"""``jobfleet status``: the overview, the newest failed jobs, orphaned and recovered jobs and the
schedules, for a terminal."""

import time
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from jobfleet import wire
from jobfleet.connect import connect
from jobfleet.settings import Settings
from ops import queries
from ops.masking import mask
from workers.failures import FailureRecord
from workers.scheduler import load_schedules

RECOVERIES_SHOWN = 10


async def gather(redis: Redis, settings: Settings, failed_limit: int) -> dict[str, Any]:
    states = await queries.workers(redis)
    flow = await queries.throughput(redis)
    record = FailureRecord(redis)
    recoveries = await queries.recoveries(redis, states, limit=RECOVERIES_SHOWN)
    now = time.time()
    return {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "queues": [
            {
                "queue": q.name,
                "queued": q.queued,
                "deferred": q.deferred,
                "in_progress": q.in_progress,
                "oldest_waiting_s": round(q.oldest_age_s, 1),
            }
            for q in await queries.queues(redis, states)
        ],
        "last_hour": flow.rate("hour"),
        "last_day": flow.rate("day"),
        "workers": [
            {"worker_id": w.worker_id, "alive": w.alive, "running": len(w.running)} for w in states if w.alive
        ],
        "orphaned": recoveries.orphaned,
        "recovered": recoveries.recent,
        "recovered_total": sum(recoveries.counts.values()),
        "failed_total": await record.count(),
        "failed": [
            {k: f.get(k) for k in ("failed_at", "job", "job_id", "tries", "error")}
            | {"payload": mask(f["payload"])}
            for f in await record.page(0, failed_limit)
        ],
        "schedules": [
            {
                "job": s.name,
                "cron": s.cron,
                "last_run_at": s.last_run["finished_at"] if s.last_run else None,
                "outcome": s.last_run["outcome"] if s.last_run else None,
                "duration_s": s.last_run["duration_s"] if s.last_run else None,
                "counts": s.last_run["counts"] if s.last_run else {},
                "last_success_at": s.last_success_at,
                "late": s.last_success_at is not None and now - s.last_success_at > 2 * s.period_s,
                "next_run": s.next_run.isoformat(),
            }
            for s in await queries.schedules(redis, load_schedules(settings.schedules_file))
        ],
    }


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> str:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(columns)]
    lines = [title, "  ".join(h.upper().ljust(w) for h, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    if not rows:
        lines.append("(none)")
    return "\n".join(lines)


def _at(epoch: float | None) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S") if epoch else "-"


def render(status: dict[str, Any]) -> str:
    hour, day = status["last_hour"], status["last_day"]
    head = (
        f"jobfleet status at {status['at']}: {len(status['workers'])} worker(s) alive, "
        f"{status['failed_total']} failed job(s) recorded\n"
        f"last hour: {hour['succeeded']} succeeded, {hour['failed']} failed "
        f"({hour['failure_rate'] * 100:.1f} %); "
        f"last day: {day['succeeded']} succeeded, {day['failed']} failed ({day['failure_rate'] * 100:.1f} %)"
    )
    queues = _table(
        "QUEUES",
        ["queue", "queued", "deferred", "in progress", "oldest waiting"],
        [
            [q["queue"], q["queued"], q["deferred"], q["in_progress"], f"{q['oldest_waiting_s']:.0f}s"]
            for q in status["queues"]
        ],
    )
    failed = _table(
        f"FAILED (newest {len(status['failed'])} of {status['failed_total']})",
        ["failed at", "job", "job id", "tries", "error"],
        [
            [
                f["failed_at"][:19].replace("T", " "),
                f["job"],
                f["job_id"],
                f["tries"],
                (f["error"] or "")[:80],
            ]
            for f in status["failed"]
        ],
    )
    schedules = _table(
        "SCHEDULES",
        ["job", "cron", "last run", "outcome", "duration", "counts", "next run"],
        [
            [
                s["job"],
                s["cron"],
                _at(s["last_run_at"]),
                (s["outcome"] or "never") + (" LATE" if s["late"] else ""),
                f"{s['duration_s']:.1f}s" if s["duration_s"] is not None else "-",
                " ".join(f"{k}={v}" for k, v in s["counts"].items()) or "-",
                s["next_run"][:19].replace("T", " "),
            ]
            for s in status["schedules"]
        ],
    )
    orphaned = _table(
        "ORPHANED (held by a worker whose lease lapsed; the next beat of a live worker recovers them)",
        ["job", "job id", "queue", "worker", "last beat"],
        [
            [o["job"], o["job_id"], o["queue"].rsplit(":", 1)[-1], o["worker_id"], _at(o["last_beat"])]
            for o in status["orphaned"]
        ],
    )
    recovered = _table(
        f"RECOVERED (newest {len(status['recovered'])} of {status['recovered_total']})",
        ["recovered at", "job", "job id", "lost try", "lost worker", "by"],
        [
            [_at(r["recovered_at"]), r["job"], r["job_id"], r["try"], r["worker_id"], r["recovered_by"]]
            for r in status["recovered"]
        ],
    )
    return "\n\n".join([head, queues, orphaned, recovered, failed, schedules])


async def main(settings: Settings, *, as_json: bool, failed_limit: int) -> int:
    redis = connect(settings.redis_target)
    try:
        status = await gather(redis, settings, failed_limit)
    finally:
        await redis.aclose()
    print(wire.encode(status).decode() if as_json else render(status))
    return 0

"""lifecycle.detect: write the lifecycle events that follow from time passing and sessions held.

The rules (``jobs.lifecycle.rules``), per student, with the teacher's ``retention_settings`` (the
defaults where there is no row, nothing where ``enabled`` is false): ``gap_detected``, ``churned``
(the student's status becomes churned), ``reactivated`` (back to active), ``milestone_reached``,
``streak_achieved``. Churned and gap_detected also notify the teacher; the notification carries the
student's id and the day count, never a name or an address, like the fleet's other notifications.

Exactly once, though ``student_lifecycle_events`` has no unique key (append-only): each batch is one
transaction that first locks its students (``jobs.student_locks``, id order, FOR NO KEY UPDATE,
waiting rather than skipping) and only then, in later statements, reads the students' earlier
events and writes the new ones. Under READ COMMITTED each statement takes a fresh snapshot, so a
concurrent run that held the same students committed its events before we got the locks and we
see them; the "once" rules then find nothing to add. Two runs over the same students serialise
per student and write each event once; runs over different students do not wait on each other.

Cost: a scheduled run looks only at students who may have changed since the previous pass, whose
start is the job's high-water mark (``Deps.marks``, kept in Redis by the runtime: the schema has no
place for it, and the fleet does not alter the schema; see ``jobs.lifecycle.progress``). The mark
is the run's start, or the start of the oldest transaction still running then (``mark_time``), so
that no row written before it can commit after the run looked. Candidates are found through
indexes: sessions written since the mark that ended within ``lifecycle_lookback_days`` or lie ahead,
and sessions that ended or crossed a gap or churn threshold since the mark (``ends_at`` ranges of
the (status, ends_at) index, one per distinct threshold); plus enrollments and students changed
since the mark and group seats taken since, which have no timestamp index (a sequential scan of
those tables: the size of the student base and of group bookings, not of the session history). A
run with no mark (the first, after Redis lost it, or ``jobfleet run`` without Redis) looks at every
student: slower, never wrong, because the locks and the "once" rules decide, not the mark. A run
cut short by its budget records the last student it got through; the next run goes on from there,
and the mark moves only when a pass is done. On demand (``teacher_id``) a run looks at every
student of that teacher and leaves the mark alone.
"""

import json
import time
from dataclasses import replace
from datetime import datetime, timedelta
from uuid import UUID

import structlog
from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    String,
    Uuid,
    and_,
    cast,
    column,
    func,
    literal,
    or_,
    select,
    table,
    union,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from db.arrays import is_any, unnest
from db.pinteach import (
    ENUMS,
    class_sessions,
    enrollments,
    enum,
    notifications,
    retention_settings,
    session_participants,
    student_lifecycle_events,
    students,
)
from jobfleet.payloads import LifecycleRun
from jobs.deps import Deps
from jobs.lifecycle import rules, state
from jobs.lifecycle.progress import Progress
from jobs.optional_tables import migration_missing
from jobs.student_locks import lock_students

log = structlog.get_logger()
MARK = "lifecycle.detect"
SUMMARY_KEYS = (
    "students_checked",
    "gap_detected",
    "churned",
    "reactivated",
    "milestone_reached",
    "streak_achieved",
    "complete",
)
NOTIFIED = {
    "churned": (
        "student.churned",
        "A student has stopped booking",
        "No session for {days} days and nothing booked.",
    ),
    "gap_detected": (
        "student.gap_detected",
        "A student has not had a session for a while",
        "No session for {days} days, though their enrollment is active.",
    ),
}

cs, s = class_sessions.c, students.c
DEFAULT_GAP, DEFAULT_CHURN = rules.Thresholds().gap_days, rules.Thresholds().churn_days
activity = table(
    "pg_stat_activity", column("datname"), column("xact_start"), column("state"), column("backend_type")
)
HIDDEN_TRANSACTION_SLACK = timedelta(hours=1)


async def run(deps: Deps, payload: LifecycleRun) -> dict[str, int]:
    totals = dict.fromkeys(SUMMARY_KEYS, 0)
    engine = deps.pinteach
    if await migration_missing(engine, "lifecycle.detect", retention_settings):
        return {**totals, "migration_missing": 1}
    on_demand = payload.teacher_id is not None
    tracked = deps.marks is not None and not on_demand
    progress = Progress.from_doc(await deps.marks.get(MARK)) if tracked else Progress()
    async with engine.connect() as conn:
        now = (await conn.execute(select(func.now()))).scalar_one()
        # a pass cut short goes on; a new one starts at this run's mark
        progress = replace(progress, next_since=progress.next_since or await mark_time(conn))
        if on_demand:
            candidates = await _teacher_students(conn, payload.teacher_id)
        elif progress.since is None:
            candidates = await _all_students(conn)
        else:
            lookback = timedelta(days=deps.settings.lifecycle_lookback_days)
            candidates = await changed_students(conn, since=progress.since, now=now, lookback=lookback)
    if progress.after is not None:
        candidates = [c for c in candidates if c > progress.after]

    deadline = time.monotonic() + deps.settings.lifecycle_budget_s
    size = deps.settings.sweep_batch_size
    done = 0
    while done < len(candidates):
        batch = candidates[done : done + size]
        async with engine.begin() as conn:
            counts = await detect_batch(conn, batch, now)
        done += len(batch)
        for key, n in counts.items():
            totals[key] += n
        if done < len(candidates) and time.monotonic() >= deadline:
            progress = replace(progress, after=batch[-1])
            break
    else:
        progress = progress.finished()
    totals["complete"] = int(progress.after is None)
    if tracked:
        await deps.marks.set(MARK, progress.doc())
    log.info("lifecycle_detected", since=progress.since.isoformat() if progress.since else None, **totals)
    return totals


async def _teacher_students(conn: AsyncConnection, teacher_id: UUID) -> list[UUID]:
    return list(
        (
            await conn.execute(
                select(s.id).where(s.teacher_id == teacher_id, s.deleted_at.is_(None)).order_by(s.id)
            )
        ).scalars()
    )


async def _all_students(conn: AsyncConnection) -> list[UUID]:
    return list((await conn.execute(select(s.id).where(s.deleted_at.is_(None)).order_by(s.id))).scalars())


async def changed_students(
    conn: AsyncConnection, *, since: datetime, now: datetime, lookback: timedelta
) -> list[UUID]:
    """Students whose lifecycle may have moved between the mark and now (see the module doc)."""
    rs = retention_settings.c
    configured = (await conn.execute(select(rs.gap_days, rs.churn_days).where(rs.enabled))).all()
    thresholds = sorted({d for row in configured for d in row} | {DEFAULT_GAP, DEFAULT_CHURN})
    query = candidates_query(thresholds, since=since, now=now, lookback=lookback)
    return sorted((await conn.execute(query)).scalars())


def candidates_query(
    thresholds: list[int], *, since: datetime, now: datetime, lookback: timedelta
) -> CompoundSelect:
    def crossed(column: ColumnElement) -> ColumnElement[bool]:
        """``column`` passed one of the thresholds (days) between the mark and now."""
        return or_(
            *(and_(column > since - timedelta(days=d), column <= now - timedelta(days=d)) for d in thresholds)
        )

    # Every status listed, so that each branch is a range of the (status, ends_at) index.
    any_status = cs.status.in_(ENUMS["session_status"])
    counted = cs.status.in_(state.BOOKED + state.HELD)
    sessions_moved = or_(
        # written since the mark (booked, completed, cancelled, reviewed) and ended lately or ahead
        and_(any_status, cs.ends_at > since - lookback, cs.updated_at > since),
        # ended since the mark, or crossed a gap or churn threshold since the mark
        and_(counted, or_(and_(cs.ends_at > since, cs.ends_at <= now), crossed(cs.ends_at))),
    )
    p, e = session_participants.c, enrollments.c
    return union(
        select(cs.student_id).where(sessions_moved, cs.student_id.is_not(None)),
        select(p.student_id)
        .select_from(session_participants.join(class_sessions, cs.id == p.session_id))
        .where(sessions_moved),
        # no timestamp index on these: a sequential scan each (see the module doc); a seat taken
        # in a group session leaves the session row as it was
        select(p.student_id).where(p.created_at > since),
        select(e.student_id).where(or_(e.updated_at > since, crossed(e.valid_from))),
        select(s.id).where(s.deleted_at.is_(None), or_(s.updated_at > since, crossed(s.created_at))),
    )


async def mark_time(conn: AsyncConnection) -> datetime:
    """The time up to which this run sees every write: now, or the start of the oldest transaction
    still running (its rows carry now() of that start and may commit after our snapshot). Where
    PostgreSQL hides another role's transactions from us, an hour's slack stands in for them."""
    oldest, hidden = (
        await conn.execute(
            select(
                func.least(func.now(), func.min(activity.c.xact_start)),
                func.coalesce(
                    func.bool_or(
                        and_(activity.c.state.is_(None), activity.c.backend_type == "client backend")
                    ),
                    False,
                ),
            ).where(activity.c.datname == func.current_database())
        )
    ).one()
    return oldest - HIDDEN_TRANSACTION_SLACK if hidden else oldest


async def detect_batch(conn: AsyncConnection, ids: list[UUID], now: datetime) -> dict[str, int]:
    locked = await lock_students(conn, ids)
    # new statements after the lock: they see what an earlier holder committed
    found = [event for st in await state.load(conn, locked, now) for event in rules.detect(st, now)]
    counts = {"students_checked": len(locked)}
    if not found:
        return counts
    written = await _write_events(conn, found)
    await _move_statuses(conn, written)
    await _notify_teachers(conn, written)
    for event in found:
        counts[event.event_type] = counts.get(event.event_type, 0) + 1
    return counts


async def _write_events(conn: AsyncConnection, found: list[rules.NewEvent]) -> list:
    ev = student_lifecycle_events.c
    rows = unnest(
        "found",
        teacher_id=([f.teacher_id for f in found], Uuid),
        student_id=([f.student_id for f in found], Uuid),
        event_type=([f.event_type for f in found], String),
        metadata=([json.dumps(f.metadata) for f in found], String),
    )
    return (
        await conn.execute(
            insert(student_lifecycle_events)
            .from_select(
                ["teacher_id", "student_id", "event_type", "metadata"],
                select(
                    rows.c.teacher_id,
                    rows.c.student_id,
                    cast(rows.c.event_type, enum("lifecycle_event_type")),
                    cast(rows.c.metadata, JSONB),
                ),
            )
            .returning(
                ev.id,
                ev.teacher_id,
                ev.student_id,
                cast(ev.event_type, String).label("event_type"),
                ev.metadata,
            )
        )
    ).all()


async def _move_statuses(conn: AsyncConnection, written: list) -> None:
    for event_type, to, frm in (
        ("churned", "churned", rules.LIVE_STATUSES),
        ("reactivated", "active", ("churned",)),
    ):
        ids = [w.student_id for w in written if w.event_type == event_type]
        if ids:
            await conn.execute(
                update(students)
                .where(is_any(s.id, ids), s.status.in_(frm))
                .values(status=literal(to, enum("student_status")), updated_at=func.now())
            )


async def _notify_teachers(conn: AsyncConnection, written: list) -> None:
    rows = [
        {
            "teacher_id": w.teacher_id,
            "student_id": w.student_id,
            "recipient_type": "teacher",
            "type": NOTIFIED[w.event_type][0],
            "title": NOTIFIED[w.event_type][1],
            "body": NOTIFIED[w.event_type][2].format(days=w.metadata["days_without_session"]),
            "payload": {
                "lifecycle_event_id": str(w.id),
                "student_id": str(w.student_id),
                "days_without_session": w.metadata["days_without_session"],
            },
        }
        for w in written
        if w.event_type in NOTIFIED
    ]
    if rows:
        await conn.execute(notifications.insert().values(rows))

"""What the lifecycle rules need to know about a batch of students, in a few set-based statements.

A student's sessions are their individual sessions (``class_sessions.student_id``) and the group
sessions they joined (``session_participants``: attended counts as completed, confirmed as the
session's own status). Booked: pending_confirmation, scheduled, in_progress; held: completed,
pending_review. A checkout hold is not a booking until it is paid.
"""

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import (
    String,
    Subquery,
    and_,
    case,
    cast,
    func,
    literal,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from db.arrays import is_any
from db.pinteach import (
    class_sessions,
    enrollments,
    retention_settings,
    session_participants,
    student_lifecycle_events,
    students,
)
from jobs.lifecycle.rules import PastEvent, StudentState, Thresholds

BOOKED = ("pending_confirmation", "scheduled", "in_progress")
HELD = ("completed", "pending_review")
# the event types this job writes, and so the ones its "once" rules look at
DETECTED = ("gap_detected", "churned", "reactivated", "milestone_reached", "streak_achieved")
DEFAULTS = Thresholds()

cs, p, s, e = class_sessions.c, session_participants.c, students.c, enrollments.c
rs = retention_settings.c


def sessions_of(ids: list[UUID]) -> Subquery:
    """One row per (student, session) with the status that counts for the student."""
    individual = select(
        cs.student_id.label("student_id"),
        cs.id.label("session_id"),
        cast(cs.status, String).label("status"),
        cs.starts_at,
        cs.ends_at,
    ).where(is_any(cs.student_id, ids))
    group = (
        select(
            p.student_id.label("student_id"),
            cs.id.label("session_id"),
            case(
                (p.status == "attended", literal("completed")),
                (p.status == "confirmed", cast(cs.status, String)),
                else_=literal("not_attended"),
            ).label("status"),
            cs.starts_at,
            cs.ends_at,
        )
        .select_from(session_participants.join(class_sessions, cs.id == p.session_id))
        .where(is_any(p.student_id, ids))
    )
    return union_all(individual, group).subquery("attended")


async def load(conn: AsyncConnection, ids: list[UUID], now: datetime) -> list[StudentState]:
    if not ids:
        return []
    a = sessions_of(ids)
    completed = a.c.status == "completed"
    per_student = (
        select(
            a.c.student_id,
            func.max(a.c.ends_at).filter(a.c.status.in_(BOOKED + HELD), a.c.ends_at <= now).label("last_at"),
            func.max(a.c.ends_at).filter(completed).label("last_completed_at"),
            func.coalesce(func.bool_or(and_(a.c.status.in_(BOOKED), a.c.ends_at > now)), False).label(
                "booked"
            ),
            func.count().filter(completed).label("completed"),
            func.array_agg(a.c.starts_at).filter(completed).label("completed_starts"),
        )
        .group_by(a.c.student_id)
        .subquery("per_student")
    )
    active = (
        select(e.student_id, func.min(e.valid_from).label("active_since"))
        .where(is_any(e.student_id, ids), e.status == "active")
        .group_by(e.student_id)
        .subquery("active")
    )
    rows = (
        await conn.execute(
            select(
                s.id,
                s.teacher_id,
                cast(s.status, String).label("status"),
                s.timezone,
                s.created_at,
                s.updated_at,
                rs.enabled,
                rs.gap_days,
                rs.churn_days,
                rs.streak_weeks,
                rs.milestones,
                per_student.c.last_at,
                per_student.c.last_completed_at,
                per_student.c.booked,
                per_student.c.completed,
                per_student.c.completed_starts,
                active.c.active_since,
            )
            .select_from(
                students.outerjoin(per_student, per_student.c.student_id == s.id)
                .outerjoin(active, active.c.student_id == s.id)
                .outerjoin(retention_settings, rs.teacher_id == s.teacher_id)
            )
            .where(is_any(s.id, ids), s.deleted_at.is_(None))
        )
    ).all()
    past = await _past_events(conn, ids)
    return [
        StudentState(
            student_id=r.id,
            teacher_id=r.teacher_id,
            status=r.status or "trial",
            created_at=r.created_at,
            updated_at=r.updated_at,
            thresholds=_thresholds(r),
            last_session_at=r.last_at,
            last_completed_at=r.last_completed_at,
            booked_ahead=bool(r.booked),
            active_since=r.active_since,
            completed=r.completed or 0,
            completed_weeks=weeks(r.completed_starts or (), r.timezone),
            events=tuple(past.get(r.id, ())),
        )
        for r in rows
    ]


def weeks(starts: Sequence[datetime], timezone: str) -> tuple[date, ...]:
    """The Mondays, in the student's time zone, of the ISO weeks of these session starts (computed
    here rather than in SQL: a zone PostgreSQL does not know would fail the whole batch there;
    here an unknown zone counts as UTC)."""
    zone = _zone(timezone)
    return tuple(sorted({(d := at.astimezone(zone).date()) - timedelta(days=d.weekday()) for at in starts}))


@lru_cache(maxsize=1024)
def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def _thresholds(r) -> Thresholds:
    if r.enabled is None:  # no retention_settings row: the defaults
        return DEFAULTS
    return Thresholds(r.enabled, r.gap_days, r.churn_days, r.streak_weeks, tuple(r.milestones or ()))


async def _past_events(conn: AsyncConnection, ids: list[UUID]) -> dict[UUID, list[PastEvent]]:
    ev = student_lifecycle_events.c
    rows = await conn.execute(
        select(ev.student_id, cast(ev.event_type, String), ev.occurred_at, ev.metadata).where(
            is_any(ev.student_id, ids), ev.event_type.in_(DETECTED)
        )
    )
    past: dict[UUID, list[PastEvent]] = defaultdict(list)
    for student_id, event_type, occurred_at, metadata in rows:
        past[student_id].append(PastEvent(event_type, occurred_at, metadata or {}))
    return past

"""sessions.auto_complete: close sessions that ended more than the grace period ago.

- Teacher in AUTO_COMPLETE mode: the session becomes ``completed``; in MANUAL mode it becomes
  ``pending_review`` and the teacher gets a notification; no credit moves until they confirm.
- Completing consumes one credit per student (the individual student, or each group participant
  still ``confirmed``, who becomes ``attended``): a CONSUME ledger row, the enrollment's counters,
  lifecycle events, all in the transaction that changes the session's status.
- Sessions of free services or without an enrollment change status only.
- An enrollment whose counters moved is closed by the shared rule (``jobs.credits.closing``): used
  up, it is completed; past valid_until with nothing booked any more, its remaining credits expire
  and it becomes expired (or completed where nothing was forfeited), exactly as credits.expire does.

One statement per batch: the due rows are locked, and every write above is a data-modifying CTE
of the same statement (``batch_statement``), so a batch costs one round trip. Only a batch that
moved the counters of an enrollment past its valid_until pays a second one, for the expiry part
of the closing rule (``close_finished_enrollments``, shared with credits.expire); the plain "used
up" completion is folded into the counter update.

Exactly once: due sessions are locked with FOR UPDATE SKIP LOCKED, so concurrent sweeps take
disjoint batches; counters move only for ledger rows that this batch inserted, so the ledger's
idempotency key is the final guard against a double consume. Enrollments are locked in id order
(a MATERIALIZED ``FOR NO KEY UPDATE`` CTE, read before any enrollment is written) so that batches
sharing enrollments queue up instead of deadlocking.

Keyset cursor: each batch starts at the ``(status, ends_at)`` of the last session the previous batch
locked, so it does not re-read the dead index entries earlier batches left behind. A session that
another transaction held locked when this sweep passed it (SKIP LOCKED) is not lost: the holder
completes it; if the holder rolls back, the session is still due, and the next sweep (the next
minute's tick at the latest, which starts again from the beginning of the index) takes it.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    String,
    and_,
    case,
    func,
    literal,
    not_,
    select,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Select

from db.pinteach import (
    audit_logs,
    class_sessions,
    enrollments,
    enum,
    notifications,
    services,
    session_participants,
    student_lifecycle_events,
    teachers,
)
from jobfleet.payloads import Sweep
from jobs.credits import ledger
from jobs.credits.closing import PAST_VALID_UNTIL, close_finished_enrollments
from jobs.deps import Deps
from jobs.followups import with_follow_ups
from jobs.reviews.request_due import follow_up_for as review_follow_up
from jobs.sweep import Taken, sweep_in_transactions

SUMMARY_KEYS = ("completed", "pending_review", "credits_consumed")
DUE_STATUSES = ("scheduled", "in_progress")
cs = class_sessions.c
e = enrollments.c


@dataclass
class Completion:
    counts: dict[str, int] = field(default_factory=dict)
    # teachers with a session this run completed (not those only sent to review)
    teacher_ids: set[UUID] = field(default_factory=set)


async def run(deps: Deps, payload: Sweep) -> dict[str, int]:
    completion = await complete(deps)
    # teachers whose students just completed sessions: their review requests may be due
    return with_follow_ups(completion.counts, await review_follow_up(deps.pinteach, completion.teacher_ids))


async def complete(deps: Deps) -> Completion:
    """The sweep, also saying which teachers' sessions it completed."""
    grace = timedelta(seconds=deps.settings.auto_complete_grace_s)
    completion = Completion()

    async def step(conn: AsyncConnection, limit: int, cursor: Any) -> Taken:
        taken = await complete_batch(conn, grace=grace, limit=limit, after=cursor)
        completion.teacher_ids.update(taken.teacher_ids)
        return taken.taken

    completion.counts = await sweep_in_transactions(
        deps.pinteach,
        step,
        settings=deps.settings,
        keys=SUMMARY_KEYS,
    )
    return completion


@dataclass(frozen=True, slots=True)
class BatchResult:
    taken: Taken
    teacher_ids: list[UUID]


async def complete_batch(
    conn: AsyncConnection, *, grace: timedelta, limit: int, after: tuple[str, datetime] | None = None
) -> BatchResult:
    row = (await conn.execute(batch_statement(grace, limit, after))).one()
    if not row.taken:
        return BatchResult(Taken(0), [])
    if row.to_close:
        # counters moved on enrollments past valid_until: the expiry part of the closing rule
        await close_finished_enrollments(conn, sorted(row.to_close))
    counts = {
        "completed": row.completed,
        "pending_review": row.pending_review,
        "credits_consumed": row.consumed,
    }
    return BatchResult(Taken(row.taken, counts, (row.last_status, row.last_ends_at)), row.teachers or [])


def due_sessions(grace: timedelta, limit: int, after: tuple[str, datetime] | None) -> Select:
    keyset = () if after is None else (tuple_(cs.status, cs.ends_at) >= tuple_(*after_key(after)),)
    return (
        select(cs.id, cs.status, cs.ends_at)
        .where(cs.status.in_(DUE_STATUSES), cs.ends_at <= func.now() - grace, *keyset)
        # index order (status, ends_at): the scan stops after `limit` rows instead of sorting
        .order_by(cs.status, cs.ends_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


def after_key(after: tuple[str, datetime]) -> tuple[ColumnElement, ColumnElement]:
    status, ends_at = after
    return literal(status, enum("session_status")), literal(ends_at, cs.ends_at.type)


def batch_statement(grace: timedelta, limit: int, after: tuple[str, datetime] | None) -> Select:
    """One batch as one statement: lock, complete, consume, count, record; returns one row."""
    due = due_sessions(grace, limit, after).cte("due").prefix_with("MATERIALIZED")
    session_status = enum("session_status")
    closed = (
        update(class_sessions)
        .where(cs.id == due.c.id, teachers.c.id == cs.teacher_id, services.c.id == cs.service_id)
        .values(
            status=case(
                (teachers.c.completion_mode == "MANUAL", literal("pending_review", session_status)),
                else_=literal("completed", session_status),
            ),
            completed_at=func.now(),
            updated_at=func.now(),
        )
        .returning(
            cs.id,
            cs.status,
            cs.teacher_id,
            cs.enrollment_id,
            cs.student_id,
            func.coalesce(cs.is_trial_session, False).label("is_trial"),
            (services.c.pricing_model != "free").label("paid"),
        )
        .cte("closed")
    )
    paid = and_(closed.c.status == "completed", closed.c.paid)
    sp = session_participants.c
    attended = (
        update(session_participants)
        .where(sp.session_id == closed.c.id, paid, closed.c.student_id.is_(None), sp.status == "confirmed")
        .values(status="attended")
        .returning(sp.enrollment_id, sp.session_id, sp.student_id, closed.c.teacher_id, closed.c.is_trial)
        .cte("attended")
    )
    consumers = union_all(
        select(
            closed.c.enrollment_id,
            closed.c.id.label("session_id"),
            closed.c.student_id,
            closed.c.teacher_id,
            closed.c.is_trial,
        ).where(paid, closed.c.enrollment_id.is_not(None), closed.c.student_id.is_not(None)),
        select(attended),
    ).cte("consumers")
    # every enrollment this batch may move, locked in id order before any of them is written
    locked = (
        select(e.id)
        .where(e.id.in_(select(consumers.c.enrollment_id)))
        .order_by(e.id)
        .with_for_update(key_share=True)
        .cte("locked")
        .prefix_with("MATERIALIZED")
    )
    c = consumers.c
    consumed = (
        ledger.insert_new(
            select(
                *ledger.entries(
                    "CONSUME",
                    literal(1),
                    "system",
                    enrollment_id=c.enrollment_id,
                    session_id=c.session_id,
                    student_id=c.student_id,
                    teacher_id=c.teacher_id,
                )
            )
        )
        .returning(
            ledger.ledger.enrollment_id,
            ledger.ledger.session_id,
            ledger.ledger.student_id,
            ledger.ledger.teacher_id,
        )
        .cte("consumed")
    )
    moved = (
        select(consumed.c.enrollment_id, func.count().label("n"))
        .join(locked, locked.c.id == consumed.c.enrollment_id)
        .group_by(consumed.c.enrollment_id)
        .subquery("moved")
    )
    counted = (
        update(enrollments)
        .where(e.id == moved.c.enrollment_id)
        .values(
            sessions_scheduled=ledger.scheduled_plus(-moved.c.n),
            sessions_completed=ledger.completed_plus(moved.c.n),
            status=case(
                (used_up_now(moved.c.n), literal("completed", enum("enrollment_status"))), else_=e.status
            ),
            updated_at=func.now(),
        )
        .returning(e.id, PAST_VALID_UNTIL.label("past_valid_until"))
        .cte("counted")
    )
    events = record_events(consumed, consumers)
    records = record_sessions(closed)

    def last(column: ColumnElement) -> ColumnElement:  # of the locked rows, in index order: the cursor
        return select(column).order_by(due.c.status.desc(), due.c.ends_at.desc()).limit(1).scalar_subquery()

    return select(
        select(func.count()).select_from(due).scalar_subquery().label("taken"),
        last(due.c.status).label("last_status"),
        last(due.c.ends_at).label("last_ends_at"),
        _count(closed, closed.c.status == "completed").label("completed"),
        _count(closed, closed.c.status == "pending_review").label("pending_review"),
        select(func.count()).select_from(consumed).scalar_subquery().label("consumed"),
        select(func.array_agg(counted.c.id))
        .where(counted.c.past_valid_until)
        .scalar_subquery()
        .label("to_close"),
        select(func.array_agg(closed.c.teacher_id.distinct()))
        .where(closed.c.status == "completed")
        .scalar_subquery()
        .label("teachers"),
    ).add_cte(events, *records)


def used_up_now(n: ColumnElement[int]) -> ColumnElement[bool]:
    """The plain closing rule on the counters as this update leaves them (``n`` consumed), for an
    enrollment not past valid_until: active, a credit count, nothing booked, nothing left. Those
    past valid_until go through ``close_finished_enrollments``, expiry first."""
    scheduled = ledger.scheduled_plus(-n)
    left = (
        e.sessions_total
        - scheduled
        - ledger.completed_plus(n)
        - func.coalesce(e.sessions_cancelled, 0)
        - func.coalesce(e.sessions_forfeited, 0)
    )
    return and_(
        e.status == "active",
        not_(func.coalesce(PAST_VALID_UNTIL, False)),
        e.sessions_total.is_not(None),
        scheduled == 0,
        left <= 0,
    )


def record_events(consumed, consumers):
    """session_completed for every consume this batch wrote, and trial_completed for trials."""
    trial = consumers.c.is_trial
    written = (
        select(
            consumed.c.teacher_id,
            consumed.c.student_id,
            consumed.c.session_id,
            consumed.c.enrollment_id,
            trial,
        )
        .join(
            consumers,
            and_(
                consumers.c.session_id == consumed.c.session_id,
                consumers.c.student_id == consumed.c.student_id,
                consumers.c.enrollment_id == consumed.c.enrollment_id,
            ),
        )
        .cte("written")
    )
    w = written.c
    lifecycle = enum("lifecycle_event_type")

    def rows(event: str, *where: ColumnElement[bool]) -> Select:
        return select(
            w.teacher_id,
            w.student_id,
            literal(event, lifecycle),
            func.jsonb_build_object(
                _text("session_id"), w.session_id, _text("enrollment_id"), w.enrollment_id
            ),
        ).where(*where)

    return (
        insert(student_lifecycle_events)
        .from_select(
            ["teacher_id", "student_id", "event_type", "metadata"],
            union_all(rows("session_completed"), rows("trial_completed", w.is_trial)),
        )
        .cte("events")
    )


def record_sessions(closed) -> tuple:
    audited = (
        insert(audit_logs)
        .from_select(
            ["teacher_id", "actor_type", "action", "entity_type", "entity_id", "metadata"],
            select(
                closed.c.teacher_id,
                literal("system", enum("audit_actor_type")),
                _text("session.auto_completed"),
                _text("class_session"),
                closed.c.id,
                func.jsonb_build_object(_text("status"), _text("completed")),
            ).where(closed.c.status == "completed"),
        )
        .cte("audited")
    )
    notified = (
        insert(notifications)
        .from_select(
            ["teacher_id", "recipient_type", "type", "title", "body", "payload"],
            select(
                closed.c.teacher_id,
                _text("teacher"),
                _text("session.review_needed"),
                _text("A session has ended and needs your review"),
                _text("Confirm the session to complete it and use the student's credit."),
                func.jsonb_build_object(_text("session_id"), closed.c.id),
            ).where(closed.c.status == "pending_review"),
        )
        .cte("notified")
    )
    return audited, notified


def _count(cte, where: ColumnElement[bool]) -> ColumnElement[int]:
    return select(func.count()).select_from(cte).where(where).scalar_subquery()


def _text(value: str) -> ColumnElement[str]:
    # typed, so that PostgreSQL knows what jsonb_build_object and INSERT ... SELECT receive
    return literal(value, String)

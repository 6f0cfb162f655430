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

Exactly once: due sessions are locked with FOR UPDATE SKIP LOCKED, so concurrent sweeps take
disjoint batches; counters move only for ledger rows that this batch inserted, so the ledger's
idempotency key is the final guard against a double consume.
"""

from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from uuid import UUID

from sqlalchemy import ColumnElement, Integer, String, Uuid, case, cast, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from db.arrays import is_any, unnest
from db.pinteach import (
    audit_logs,
    class_sessions,
    credit_ledger,
    enrollments,
    enum,
    notifications,
    services,
    session_participants,
    student_lifecycle_events,
    teachers,
)
from jobfleet.payloads import Sweep
from jobs.credits.closing import close_finished_enrollments
from jobs.credits.locking import lock_enrollments
from jobs.deps import Deps
from jobs.followups import with_follow_ups
from jobs.reviews.request_due import follow_up_for as review_follow_up
from jobs.sweep import sweep_in_transactions

SUMMARY_KEYS = ("completed", "pending_review", "credits_consumed")
DUE_STATUSES = ("scheduled", "in_progress")


@dataclass(frozen=True, slots=True)
class Consumer:
    """One student who attended one completed session and so uses one credit."""

    enrollment_id: UUID
    session_id: UUID
    student_id: UUID
    teacher_id: UUID
    is_trial: bool

    @property
    def idempotency_key(self) -> str:
        return f"CONSUME:{self.enrollment_id}:{self.session_id}:{self.student_id}"


async def run(deps: Deps, payload: Sweep) -> dict[str, int]:
    grace = timedelta(seconds=deps.settings.auto_complete_grace_s)
    batch_size = deps.settings.sweep_batch_size
    completed_for: set[UUID] = set()  # teachers whose students completed: reviews may be due

    summary = await sweep_in_transactions(
        deps.pinteach,
        partial(complete_batch, grace=grace, limit=batch_size, completed_for=completed_for),
        budget_s=deps.settings.sweep_budget_s,
        keys=SUMMARY_KEYS,
    )
    return with_follow_ups(summary, await review_follow_up(deps.pinteach, completed_for))


async def complete_batch(
    conn: AsyncConnection, *, grace: timedelta, limit: int, completed_for: set[UUID] | None = None
) -> tuple[int, dict[str, int]]:
    due_ids = (
        (
            await conn.execute(
                select(class_sessions.c.id)
                .where(
                    class_sessions.c.status.in_(DUE_STATUSES), class_sessions.c.ends_at <= func.now() - grace
                )
                # index order (status, ends_at): the scan stops after `limit` rows instead of sorting
                .order_by(class_sessions.c.status, class_sessions.c.ends_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        .scalars()
        .all()
    )
    if not due_ids:
        return 0, {}

    session_status = enum("session_status")
    closed = (
        await conn.execute(
            update(class_sessions)
            .where(
                is_any(class_sessions.c.id, due_ids),
                teachers.c.id == class_sessions.c.teacher_id,
                services.c.id == class_sessions.c.service_id,
            )
            .values(
                status=case(
                    (teachers.c.completion_mode == "MANUAL", literal("pending_review", session_status)),
                    else_=literal("completed", session_status),
                ),
                completed_at=func.now(),
                updated_at=func.now(),
            )
            .returning(
                class_sessions.c.id,
                class_sessions.c.status,
                class_sessions.c.teacher_id,
                class_sessions.c.enrollment_id,
                class_sessions.c.student_id,
                class_sessions.c.is_trial_session,
                services.c.pricing_model,
            )
        )
    ).all()
    completed = [s for s in closed if s.status == "completed"]
    for_review = [s for s in closed if s.status == "pending_review"]
    paid = [s for s in completed if s.pricing_model != "free"]

    consumers = [
        Consumer(s.enrollment_id, s.id, s.student_id, s.teacher_id, bool(s.is_trial_session))
        for s in paid
        if s.enrollment_id is not None and s.student_id is not None
    ]
    group_sessions = {s.id: s for s in paid if s.student_id is None}
    if group_sessions:
        attended = (
            await conn.execute(
                update(session_participants)
                .where(
                    is_any(session_participants.c.session_id, group_sessions),
                    session_participants.c.status == "confirmed",
                )
                .values(status="attended")
                .returning(
                    session_participants.c.session_id,
                    session_participants.c.student_id,
                    session_participants.c.enrollment_id,
                )
            )
        ).all()
        consumers += [
            Consumer(
                p.enrollment_id,
                p.session_id,
                p.student_id,
                group_sessions[p.session_id].teacher_id,
                bool(group_sessions[p.session_id].is_trial_session),
            )
            for p in attended
        ]

    consumed = await consume_credits(conn, consumers)
    await write_records(conn, completed, for_review, consumed)
    if completed_for is not None:
        completed_for.update(s.teacher_id for s in completed)
    return len(due_ids), {
        "completed": len(completed),
        "pending_review": len(for_review),
        "credits_consumed": len(consumed),
    }


async def consume_credits(conn: AsyncConnection, consumers: list[Consumer]) -> list[Consumer]:
    """Insert the CONSUME rows and move the counters for those this call inserted; return them."""
    if not consumers:
        return []
    await lock_enrollments(conn, (c.enrollment_id for c in consumers))
    rows = unnest(
        "consume",
        enrollment_id=([c.enrollment_id for c in consumers], Uuid),
        session_id=([c.session_id for c in consumers], Uuid),
        student_id=([c.student_id for c in consumers], Uuid),
        teacher_id=([c.teacher_id for c in consumers], Uuid),
        idempotency_key=([c.idempotency_key for c in consumers], String),
    )
    inserted_keys = set(
        (
            await conn.execute(
                insert(credit_ledger)
                .from_select(
                    [*rows.c.keys(), "action", "amount", "actor"],
                    select(
                        *rows.c,
                        literal("CONSUME", enum("credit_action")),
                        literal(1),
                        literal("system", enum("credit_actor")),
                    ),
                )
                .on_conflict_do_nothing(
                    index_elements=[credit_ledger.c.idempotency_key],
                    index_where=credit_ledger.c.idempotency_key.is_not(None),
                )
                .returning(credit_ledger.c.idempotency_key)
            )
        ).scalars()
    )
    consumed = [c for c in consumers if c.idempotency_key in inserted_keys]
    if not consumed:
        return []

    per_enrollment = Counter(c.enrollment_id for c in consumed)
    counts = unnest(
        "consumed", enrollment_id=(per_enrollment.keys(), Uuid), n=(per_enrollment.values(), Integer)
    )
    await conn.execute(
        update(enrollments)
        .where(enrollments.c.id == counts.c.enrollment_id)
        .values(
            sessions_scheduled=func.greatest(
                func.coalesce(enrollments.c.sessions_scheduled, 0) - counts.c.n, 0
            ),
            sessions_completed=func.coalesce(enrollments.c.sessions_completed, 0) + counts.c.n,
            updated_at=func.now(),
        )
    )
    await close_finished_enrollments(conn, list(per_enrollment))
    return consumed


async def write_records(
    conn: AsyncConnection, completed: list, for_review: list, consumed: list[Consumer]
) -> None:
    events = [
        (c, event)
        for c in consumed
        for event in (("session_completed", "trial_completed") if c.is_trial else ("session_completed",))
    ]
    if events:
        rows = unnest(
            "events",
            teacher_id=([c.teacher_id for c, _ in events], Uuid),
            student_id=([c.student_id for c, _ in events], Uuid),
            event_type=([e for _, e in events], String),
            session_id=([c.session_id for c, _ in events], Uuid),
            enrollment_id=([c.enrollment_id for c, _ in events], Uuid),
        )
        await conn.execute(
            insert(student_lifecycle_events).from_select(
                ["teacher_id", "student_id", "event_type", "metadata"],
                select(
                    rows.c.teacher_id,
                    rows.c.student_id,
                    cast(rows.c.event_type, enum("lifecycle_event_type")),
                    func.jsonb_build_object(
                        _text("session_id"), rows.c.session_id, _text("enrollment_id"), rows.c.enrollment_id
                    ),
                ),
            )
        )
    if completed:
        await conn.execute(
            insert(audit_logs).from_select(
                ["teacher_id", "actor_type", "action", "entity_type", "entity_id", "metadata"],
                select(
                    class_sessions.c.teacher_id,
                    literal("system", enum("audit_actor_type")),
                    _text("session.auto_completed"),
                    _text("class_session"),
                    class_sessions.c.id,
                    func.jsonb_build_object(_text("status"), _text("completed")),
                ).where(is_any(class_sessions.c.id, (s.id for s in completed))),
            )
        )
    if for_review:
        await conn.execute(
            insert(notifications).from_select(
                ["teacher_id", "recipient_type", "type", "title", "body", "payload"],
                select(
                    class_sessions.c.teacher_id,
                    _text("teacher"),
                    _text("session.review_needed"),
                    _text("A session has ended and needs your review"),
                    _text("Confirm the session to complete it and use the student's credit."),
                    func.jsonb_build_object(_text("session_id"), class_sessions.c.id),
                ).where(is_any(class_sessions.c.id, (s.id for s in for_review))),
            )
        )


def _text(value: str) -> ColumnElement[str]:
    # typed, so that PostgreSQL knows what jsonb_build_object and INSERT ... SELECT receive
    return literal(value, String)

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

from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from sqlalchemy import case, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from db.pinteach import (
    INT_ARRAY,
    UUID_ARRAY,
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
from jobs.sweep import sweep

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

    async def batch() -> tuple[int, dict[str, int]]:
        async with deps.pinteach.begin() as conn:
            return await complete_batch(conn, grace=grace, limit=batch_size)

    return await sweep(batch, budget_s=deps.settings.sweep_budget_s, keys=SUMMARY_KEYS)


async def complete_batch(
    conn: AsyncConnection, *, grace: timedelta, limit: int
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
                class_sessions.c.id.in_(due_ids),
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
                    session_participants.c.session_id.in_(group_sessions),
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
    inserted_keys = set(
        (
            await conn.execute(
                insert(credit_ledger)
                .values(
                    [
                        {
                            "enrollment_id": c.enrollment_id,
                            "session_id": c.session_id,
                            "student_id": c.student_id,
                            "teacher_id": c.teacher_id,
                            "action": "CONSUME",
                            "amount": 1,
                            "actor": "system",
                            "idempotency_key": c.idempotency_key,
                        }
                        for c in consumers
                    ]
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

    per_enrollment: dict[UUID, int] = {}
    for c in consumed:
        per_enrollment[c.enrollment_id] = per_enrollment.get(c.enrollment_id, 0) + 1
    counts = select(
        func.unnest(literal(list(per_enrollment), type_=UUID_ARRAY)).label("enrollment_id"),
        func.unnest(literal(list(per_enrollment.values()), type_=INT_ARRAY)).label("n"),
    ).subquery("consumed")
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
    lifecycle = [
        {
            "teacher_id": c.teacher_id,
            "student_id": c.student_id,
            "event_type": event,
            "metadata": {"session_id": str(c.session_id), "enrollment_id": str(c.enrollment_id)},
        }
        for c in consumed
        for event in (("session_completed", "trial_completed") if c.is_trial else ("session_completed",))
    ]
    if lifecycle:
        await conn.execute(student_lifecycle_events.insert().values(lifecycle))
    if completed:
        await conn.execute(
            audit_logs.insert().values(
                [
                    {
                        "teacher_id": s.teacher_id,
                        "actor_type": "system",
                        "action": "session.auto_completed",
                        "entity_type": "class_session",
                        "entity_id": s.id,
                        "metadata": {"status": "completed"},
                    }
                    for s in completed
                ]
            )
        )
    if for_review:
        await conn.execute(
            notifications.insert().values(
                [
                    {
                        "teacher_id": s.teacher_id,
                        "recipient_type": "teacher",
                        "type": "session.review_needed",
                        "title": "A session has ended and needs your review",
                        "body": "Confirm the session to complete it and use the student's credit.",
                        "payload": {"session_id": str(s.id)},
                    }
                    for s in for_review
                ]
            )
        )

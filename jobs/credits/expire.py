"""credits.expire: forfeit the unused credits of enrollments past valid_until; send expiry notices.

- Due: active enrollments past ``valid_until`` that the closing rule can still move: unlimited ones,
  ones with nothing booked, and ones with credits left that were never expired. (An enrollment whose
  credits are forfeited but whose booked sessions have not ended waits for sessions.auto_complete.)
- The rule itself is ``jobs.credits.closing.expire_enrollments``, shared with sessions.auto_complete.
- Notices: once per enrollment, an ``enrollment_expiring`` lifecycle event (its metadata names the
  enrollment) and a notification for the student.

Exactly once: due enrollments are locked FOR NO KEY UPDATE SKIP LOCKED, so concurrent sweeps take
disjoint batches; the EXPIRE idempotency key guards the ledger, and the notice is written by a
statement that runs after the lock is held, so it sees any notice an earlier holder committed.
"""

from datetime import timedelta
from typing import Any
from uuid import UUID

import structlog
from sqlalchemy import String, cast, exists, func, literal, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from db.arrays import is_any
from db.pinteach import enrollments, enum, notifications, student_lifecycle_events
from jobfleet.payloads import Sweep
from jobs.credits.closing import (
    CREDITS_EXPIRED,
    NOTHING_BOOKED,
    PAST_VALID_UNTIL,
    REMAINING,
    expire_enrollments,
)
from jobs.deps import Deps
from jobs.sweep import lock_due, sweep

log = structlog.get_logger()
SUMMARY_KEYS = ("expired", "credits_expired", "expiring_notices")

e = enrollments.c
events = student_lifecycle_events.c
DUE = (
    e.status == "active",
    PAST_VALID_UNTIL,
    or_(e.sessions_total.is_(None), NOTHING_BOOKED, (REMAINING > 0) & ~CREDITS_EXPIRED),
)
NOTICE_SENT = exists().where(
    events.student_id == e.student_id,
    events.event_type == "enrollment_expiring",
    events.metadata["enrollment_id"].astext == cast(e.id, String),
)


async def run(deps: Deps, payload: Sweep) -> dict[str, int]:
    notice_window = timedelta(days=deps.settings.credits_expiry_notice_days)
    batch_size = deps.settings.sweep_batch_size

    async def batch() -> tuple[int, dict[str, int]]:
        async with deps.pinteach.begin() as conn:
            taken, counts = await expire_batch(conn, limit=batch_size)
            noticed_taken, notices = await notice_batch(conn, window=notice_window, limit=batch_size)
            return taken + noticed_taken, {**counts, "expiring_notices": notices}

    return await sweep(batch, budget_s=deps.settings.sweep_budget_s, keys=SUMMARY_KEYS)


async def lock(conn: AsyncConnection, *where: Any, limit: int) -> list[UUID]:
    # No index serves valid_until: the schema's owners have none, so this scans enrollments.
    return await lock_due(conn, e.id, *where, order_by=[e.valid_until], limit=limit, key_share=True)


async def expire_batch(conn: AsyncConnection, *, limit: int) -> tuple[int, dict[str, int]]:
    due_ids = await lock(conn, *DUE, limit=limit)
    if not due_ids:
        return 0, {}
    expiry = await expire_enrollments(conn, due_ids)
    log.info(
        "credits_expired",
        enrollments=len(due_ids),
        expired=expiry.expired,
        completed=expiry.completed,
        credits=expiry.credits_expired,
    )
    return len(due_ids), {"expired": expiry.expired, "credits_expired": expiry.credits_expired}


async def notice_batch(conn: AsyncConnection, *, window: timedelta, limit: int) -> tuple[int, int]:
    expiring = (
        e.status == "active",
        e.valid_until > func.now(),
        e.valid_until <= func.now() + window,
        e.sessions_total.is_not(None),
        REMAINING > 0,
        ~NOTICE_SENT,
    )
    candidate_ids = await lock(conn, *expiring, limit=limit)
    if not candidate_ids:
        return 0, 0
    # A new statement, so a new snapshot: a notice that another sweep committed before we took the
    # lock is visible to NOTICE_SENT here, though it was not to the locking select.
    written = (
        await conn.execute(
            insert(student_lifecycle_events)
            .from_select(
                ["teacher_id", "student_id", "event_type", "metadata"],
                select(
                    e.teacher_id,
                    e.student_id,
                    literal("enrollment_expiring", enum("lifecycle_event_type")),
                    func.jsonb_build_object(
                        "enrollment_id",
                        e.id,
                        "valid_until",
                        e.valid_until,
                        "credits_remaining",
                        REMAINING,
                    ),
                ).where(is_any(e.id, candidate_ids), *expiring),
            )
            .returning(events.teacher_id, events.student_id, events.metadata)
        )
    ).all()
    if written:
        await conn.execute(
            notifications.insert().values(
                [
                    {
                        "teacher_id": w.teacher_id,
                        "student_id": w.student_id,
                        "recipient_type": "student",
                        "type": "enrollment.expiring",
                        "title": "Your sessions are about to expire",
                        "body": f"{w.metadata['credits_remaining']} unused sessions expire soon: book them "
                        "before they do.",
                        "payload": w.metadata,
                    }
                    for w in written
                ]
            )
        )
        log.info("enrollment_expiry_notices_sent", notices=len(written))
    return len(candidate_ids), len(written)

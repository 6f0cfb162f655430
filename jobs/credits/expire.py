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

from datetime import datetime, timedelta

import structlog
from sqlalchemy import String, cast, exists, func, literal, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from db.pinteach import UUID_ARRAY, enrollments, enum, notifications, student_lifecycle_events
from jobfleet.payloads import Sweep
from jobs.credits.closing import (
    CREDITS_EXPIRED,
    NOTHING_BOOKED,
    PAST_VALID_UNTIL,
    REMAINING,
    expire_enrollments,
)
from jobs.deps import Deps
from jobs.sweep import Taken, sweep_in_transactions

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

    async def step(conn: AsyncConnection, limit: int, cursor: Cursor | None) -> Taken:
        expired, noticed = cursor or (None, None)
        taken = await expire_batch(conn, limit=limit, after=expired)
        notices = await notice_batch(conn, window=notice_window, limit=limit, after=noticed)
        return Taken(
            taken.rows + notices.rows,
            {**taken.counts, **notices.counts},
            (taken.cursor or expired, notices.cursor or noticed),
        )

    return await sweep_in_transactions(
        deps.pinteach,
        step,
        settings=deps.settings,
        keys=SUMMARY_KEYS,
    )


# The valid_until of the last enrollment each part of a batch locked: the next batch starts there.
Cursor = tuple[datetime | None, datetime | None]


async def lock(conn: AsyncConnection, *where, limit: int, after: datetime | None) -> list:
    # No index serves valid_until: the schema's owners have none, so this scans enrollments; the
    # cursor spares the sort of what earlier batches took.
    keyset = () if after is None else (e.valid_until >= after,)
    return (
        await conn.execute(
            select(e.id, e.valid_until)
            .where(*where, *keyset)
            .order_by(e.valid_until)
            .limit(limit)
            .with_for_update(skip_locked=True, key_share=True)
        )
    ).all()


async def expire_batch(conn: AsyncConnection, *, limit: int, after: datetime | None = None) -> Taken:
    due = await lock(conn, *DUE, limit=limit, after=after)
    if not due:
        return Taken(0)
    expiry = await expire_enrollments(conn, [d.id for d in due])
    log.info(
        "credits_expired",
        enrollments=len(due),
        expired=expiry.expired,
        completed=expiry.completed,
        credits=expiry.credits_expired,
    )
    counts = {"expired": expiry.expired, "credits_expired": expiry.credits_expired}
    return Taken(len(due), counts, due[-1].valid_until)


async def notice_batch(
    conn: AsyncConnection, *, window: timedelta, limit: int, after: datetime | None = None
) -> Taken:
    expiring = (
        e.status == "active",
        e.valid_until > func.now(),
        e.valid_until <= func.now() + window,
        e.sessions_total.is_not(None),
        REMAINING > 0,
        ~NOTICE_SENT,
    )
    candidates = await lock(conn, *expiring, limit=limit, after=after)
    if not candidates:
        return Taken(0, {"expiring_notices": 0})
    # A new statement, so a new snapshot: a notice that another sweep committed before we took the
    # lock is visible to NOTICE_SENT here, though it was not to the locking select. The event and
    # the student's notification are written by one statement.
    written = (
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
            ).where(e.id == func.any(literal([c.id for c in candidates], UUID_ARRAY)), *expiring),
        )
        .returning(events.teacher_id, events.student_id, events.metadata)
        .cte("written")
    )
    w = written.c
    notified = (
        insert(notifications)
        .from_select(
            ["teacher_id", "student_id", "recipient_type", "type", "title", "body", "payload"],
            select(
                w.teacher_id,
                w.student_id,
                literal("student", String),
                literal("enrollment.expiring", String),
                literal("Your sessions are about to expire", String),
                func.concat(
                    w.metadata["credits_remaining"].astext,
                    " unused sessions expire soon: book them before they do.",
                ),
                w.metadata,
            ),
        )
        .cte("notified")
    )
    sent = (await conn.execute(select(func.count()).select_from(written).add_cte(notified))).scalar_one()
    if sent:
        log.info("enrollment_expiry_notices_sent", notices=sent)
    return Taken(len(candidates), {"expiring_notices": sent}, candidates[-1].valid_until)

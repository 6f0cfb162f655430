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

from dataclasses import dataclass
from datetime import timedelta
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
        # a part whose batch found nothing is done for this run (None: not started yet)
        expiring, noticing = cursor or (None, None)
        taken = (
            Taken(0, {}, DONE) if expiring is DONE else await expire_batch(conn, limit=limit, listed=expiring)
        )
        notices = (
            Taken(0, {}, DONE)
            if noticing is DONE
            else await notice_batch(conn, window=notice_window, limit=limit, listed=noticing)
        )
        return Taken(
            taken.rows + notices.rows,
            {**taken.counts, **notices.counts},
            (taken.cursor if taken.rows else DONE, notices.cursor if notices.rows else DONE),
        )

    return await sweep_in_transactions(deps.pinteach, step, settings=deps.settings, keys=SUMMARY_KEYS)


@dataclass(frozen=True, slots=True)
class Listed:
    """What one part of the sweep has left of the due ids its last scan listed."""

    ids: list[UUID]
    complete: bool  # the scan listed every row due then (fewer than SCAN_ROWS)


# Per part: None (not started), what is left of its list, or DONE (its last batch found nothing).
Cursor = tuple[Listed | None, Listed | None]
DONE = Listed([], True)
# Ids one scan lists: a sweep scans enrollments once per this many due rows, not once per batch.
SCAN_ROWS = 100_000


async def lock(conn: AsyncConnection, *where, limit: int, listed: Listed | None) -> tuple[list, Listed]:
    """Lock up to ``limit`` enrollments matching ``where``, oldest valid_until first; return them and
    what is left of the list.

    No index serves valid_until (the schema's owners have none), so finding due rows scans
    enrollments. A scan lists the due ids in valid_until order without locking them (up to
    ``SCAN_ROWS``); batches then lock from the list by primary key, rechecking ``where`` under the
    lock, so a row another sweep took meanwhile is skipped. When the list runs out, the sweep scans
    again only if the scan was cut at ``SCAN_ROWS``. Rows that became due during the run, or that
    another transaction held and then rolled back, are taken by the next run (the next tick).
    """
    scanned = False
    while True:
        if listed is None or (not listed.ids and not listed.complete and not scanned):
            ids = (
                await conn.execute(select(e.id).where(*where).order_by(e.valid_until).limit(SCAN_ROWS))
            ).scalars()
            listed, scanned = Listed(found := list(ids), len(found) < SCAN_ROWS), True
        if not listed.ids:
            return [], listed
        chunk, listed = listed.ids[:limit], Listed(listed.ids[limit:], listed.complete)
        locked = (
            await conn.execute(
                select(e.id)
                .where(is_any(e.id, chunk), *where)
                .order_by(e.valid_until)
                .with_for_update(skip_locked=True, key_share=True)
            )
        ).all()
        if locked:
            return locked, listed


async def expire_batch(conn: AsyncConnection, *, limit: int, listed: Listed | None = None) -> Taken:
    due, rest = await lock(conn, *DUE, limit=limit, listed=listed)
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
    return Taken(len(due), counts, rest)


async def notice_batch(
    conn: AsyncConnection, *, window: timedelta, limit: int, listed: Listed | None = None
) -> Taken:
    expiring = (
        e.status == "active",
        e.valid_until > func.now(),
        e.valid_until <= func.now() + window,
        e.sessions_total.is_not(None),
        REMAINING > 0,
        ~NOTICE_SENT,
    )
    candidates, rest = await lock(conn, *expiring, limit=limit, listed=listed)
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
            ).where(is_any(e.id, (c.id for c in candidates)), *expiring),
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
    return Taken(len(candidates), {"expiring_notices": sent}, rest)

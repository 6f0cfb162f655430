"""When an enrollment is finished: the rule shared by every job that moves its counters.

An active enrollment is finished when
- it has a credit count and nothing is left, used or booked: it is ``completed``;
- its ``valid_until`` has passed. Its remaining credits expire then (an EXPIRE ledger row,
  ``sessions_forfeited``), but booked sessions are honoured: it stays ``active`` until nothing is
  booked any more, and then becomes ``expired``, or ``completed`` where nothing was forfeited.
  Enrollments without a credit count (unlimited, subscriptions) expire at ``valid_until`` with no
  ledger row.

Callers hold the row locks of the enrollments they pass, so that the counters read here are final.
"""

from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import String, and_, case, cast, exists, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from db.pinteach import UUID_ARRAY, audit_logs, credit_ledger, enrollments, enum
from jobs.credits.ledger import EXPIRE_KEY, entries, insert_new, ledger
from jobs.credits.ledger import expire_key as expire_key  # where tests and callers found it

e = enrollments.c
REMAINING = (
    e.sessions_total
    - func.coalesce(e.sessions_scheduled, 0)
    - func.coalesce(e.sessions_completed, 0)
    - func.coalesce(e.sessions_cancelled, 0)
    - func.coalesce(e.sessions_forfeited, 0)
)
PAST_VALID_UNTIL = e.valid_until <= func.now()
NOTHING_BOOKED = func.coalesce(e.sessions_scheduled, 0) == 0
CREDITS_EXPIRED = exists().where(credit_ledger.c.idempotency_key == EXPIRE_KEY)


@dataclass(frozen=True, slots=True)
class Expiry:
    expired: int = 0  # enrollments closed as expired
    completed: int = 0  # enrollments past valid_until closed as completed: nothing was forfeited
    credits_expired: int = 0  # credits forfeited by EXPIRE rows this call inserted

    @property
    def closed(self) -> int:
        return self.expired + self.completed


async def close_finished_enrollments(conn: AsyncConnection, enrollment_ids: list[UUID]) -> int:
    """Apply the whole rule to these enrollments; return how many were closed."""
    if not enrollment_ids:
        return 0
    # Expiry first: a used-up enrollment past valid_until whose credits were forfeited is expired,
    # which the plain "nothing left" rule below would call completed.
    expiry = await expire_enrollments(conn, enrollment_ids)
    result = await conn.execute(
        update(enrollments)
        .where(
            e.id == func.any(literal(enrollment_ids, UUID_ARRAY)),
            e.status == "active",
            e.sessions_total.is_not(None),
            NOTHING_BOOKED,
            REMAINING <= 0,
        )
        .values(status="completed", updated_at=func.now())
    )
    return expiry.closed + result.rowcount


async def expire_enrollments(conn: AsyncConnection, enrollment_ids: list[UUID]) -> Expiry:
    """Forfeit the remaining credits of those past valid_until, and close those with nothing booked."""
    if not enrollment_ids:
        return Expiry()
    ids = literal(enrollment_ids, UUID_ARRAY)
    credits_expired = await forfeit_remaining_credits(conn, ids)
    closed = (
        update(enrollments)
        .where(
            e.id == func.any(ids),
            e.status == "active",
            PAST_VALID_UNTIL,
            or_(e.sessions_total.is_(None), NOTHING_BOOKED),
        )
        .values(
            status=case(
                (
                    and_(e.sessions_total.is_not(None), REMAINING <= 0, ~CREDITS_EXPIRED),
                    literal("completed", enum("enrollment_status")),
                ),
                else_=literal("expired", enum("enrollment_status")),
            ),
            updated_at=func.now(),
        )
        .returning(e.id, e.teacher_id, e.status, e.sessions_forfeited)
        .cte("closed")
    )
    c = closed.c
    status = cast(c.status, String)
    audited = (
        insert(audit_logs)
        .from_select(
            ["teacher_id", "actor_type", "action", "entity_type", "entity_id", "metadata"],
            select(
                c.teacher_id,
                literal("system", enum("audit_actor_type")),
                func.concat("enrollment.", status),
                literal("enrollment", String),
                c.id,
                func.jsonb_build_object(
                    literal("status", String),
                    status,
                    literal("reason", String),
                    literal("valid_until_passed", String),
                    literal("sessions_forfeited", String),
                    func.coalesce(c.sessions_forfeited, 0),
                ),
            ),
        )
        .cte("audited")
    )
    closed = (await conn.execute(select(c.status).add_cte(audited))).scalars().all()
    expired = sum(1 for status in closed if status == "expired")
    return Expiry(expired=expired, completed=len(closed) - expired, credits_expired=credits_expired)


async def forfeit_remaining_credits(conn: AsyncConnection, ids) -> int:
    """One EXPIRE row per enrollment past valid_until with credits left; the counter moves only for
    rows this statement inserted, so a second run (or a crashed first one) cannot forfeit twice."""
    inserted = (
        insert_new(
            select(
                *entries(
                    "EXPIRE",
                    REMAINING,
                    "system",
                    enrollment_id=e.id,
                    session_id=None,
                    student_id=e.student_id,
                    teacher_id=e.teacher_id,
                )
            ).where(
                e.id == func.any(ids),
                e.status == "active",
                PAST_VALID_UNTIL,
                e.sessions_total.is_not(None),
                REMAINING > 0,
            ),
        )
        .returning(ledger.enrollment_id, ledger.amount)
        .cte("expired_credits")
    )
    forfeited = (
        await conn.execute(
            update(enrollments)
            .where(e.id == inserted.c.enrollment_id)
            .values(
                sessions_forfeited=func.coalesce(e.sessions_forfeited, 0) + inserted.c.amount,
                updated_at=func.now(),
            )
            .returning(inserted.c.amount)
        )
    ).scalars()
    return sum(forfeited)

"""Settling holds in the database: confirm the paid ones, expire the rest, a batch at a time.

Every function takes a whole batch and costs a fixed number of statements. The caller locks the
holds (FOR UPDATE SKIP LOCKED) and then their enrollments through ``lock_enrollments``, in id order,
before anything here writes, so that batches sharing an enrollment queue up instead of deadlocking.
"""

from collections import Counter
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import Integer, String, Uuid, column, func, literal, select, text, update, values
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
    session_payment,
    student_lifecycle_events,
)
from jobs.stripe_api.client import Checkout

cs = class_sessions.c
e = enrollments.c


@dataclass(frozen=True, slots=True)
class Hold:
    session_id: UUID
    enrollment_id: UUID | None
    student_id: UUID | None
    teacher_id: UUID
    checkout_id: str | None
    account: str | None  # the teacher's connected account, where the Checkout Session lives

    @property
    def books_a_credit(self) -> bool:
        return self.enrollment_id is not None and self.student_id is not None

    def key(self, action: str) -> str:
        session = "" if action == "GRANT" else str(self.session_id)
        return f"{action}:{self.enrollment_id}:{session}:{self.student_id}"


async def confirm(conn: AsyncConnection, paid: list[tuple[Hold, Checkout]], totals: dict) -> int:
    """Stripe says these holds were paid: book them as if the webhook had arrived."""
    if not paid:
        return 0
    ids = [h.session_id for h, _ in paid]
    await conn.execute(
        update(class_sessions)
        .where(cs.id.in_(ids), cs.status == "hold")
        .values(status="scheduled", updated_at=func.now())
    )
    payments = values(
        column("session_id", Uuid),
        column("payment_intent_id", String),
        column("amount_paid", Integer),
        column("currency", String),
        name="stripe_says",
    ).data([(h.session_id, c.payment_intent_id, c.amount_total, c.currency) for h, c in paid])
    sp = session_payment.c
    await conn.execute(
        update(session_payment)
        .where(sp.session_id == payments.c.session_id)
        .values(
            stripe_payment_intent_id=func.coalesce(payments.c.payment_intent_id, sp.stripe_payment_intent_id),
            amount_paid=func.coalesce(payments.c.amount_paid, sp.amount_paid),
            currency=func.coalesce(payments.c.currency, sp.currency),
        )
    )
    enrollment_ids = sorted({h.enrollment_id for h, _ in paid if h.enrollment_id is not None})
    if enrollment_ids:
        await conn.execute(
            update(enrollments)
            .where(e.id.in_(enrollment_ids), e.status == "pending_payment")
            .values(status="active", updated_at=func.now())
        )

    bookings = [h for h, _ in paid if h.books_a_credit]
    entries: dict[str, dict] = {}
    for h in bookings:
        total = totals.get(h.enrollment_id)
        entries[h.key("GRANT")] = ledger_row(h, "GRANT", 1 if total is None else total, "stripe", None)
        entries[h.key("RESERVE")] = ledger_row(h, "RESERVE", 1, "system", h.session_id)
    written = await write_ledger(conn, list(entries.values()))
    await move_scheduled(conn, Counter(r.enrollment_id for r in written if r.action == "RESERVE"))
    await record_first_purchases(conn, [r for r in written if r.action == "GRANT"])

    checkout_of = {h.session_id: c.id for h, c in paid}
    await audit(conn, [h for h, _ in paid], "stripe", "session.hold_confirmed", checkout_of, "paid")
    return len(paid)


async def expire(conn: AsyncConnection, expiring: list[tuple[Hold, str]]) -> int:
    """Release these holds: the slot is free again and nothing was paid."""
    if not expiring:
        return 0
    holds = [h for h, _ in expiring]
    ids = [h.session_id for h in holds]
    await conn.execute(
        update(class_sessions)
        .where(cs.id.in_(ids), cs.status == "hold")
        .values(status="expired", updated_at=func.now())
    )
    enrollment_ids = sorted({h.enrollment_id for h in holds if h.enrollment_id is not None})
    if enrollment_ids:
        released = await release_reservations(conn, enrollment_ids, ids)
        await move_scheduled(conn, Counter({k: -n for k, n in Counter(released).items()}))
        other = class_sessions.alias("other")
        still_used = select(other.c.id).where(other.c.enrollment_id == e.id, other.c.status != "expired")
        await conn.execute(
            update(enrollments)
            .where(e.id.in_(enrollment_ids), e.status == "pending_payment", ~still_used.exists())
            .values(status="cancelled", updated_at=func.now())
        )
    reasons = {h.session_id: reason for h, reason in expiring}
    for reason in sorted(set(reasons.values())):
        group = [h for h in holds if reasons[h.session_id] == reason]
        await audit(conn, group, "system", "session.hold_expired", {}, reason)
    return len(holds)


def ledger_row(hold: Hold, action: str, amount: int, actor: str, session_id: UUID | None) -> dict:
    return {
        "enrollment_id": hold.enrollment_id,
        "session_id": session_id,
        "student_id": hold.student_id,
        "teacher_id": hold.teacher_id,
        "action": action,
        "amount": amount,
        "actor": actor,
        "idempotency_key": hold.key(action),
    }


async def write_ledger(conn: AsyncConnection, rows: list[dict]) -> list:
    """Insert the rows whose keys are new; return those inserted (the others were written before)."""
    if not rows:
        return []
    return (
        await conn.execute(
            insert(credit_ledger)
            .values(rows)
            .on_conflict_do_nothing(
                index_elements=[credit_ledger.c.idempotency_key],
                index_where=credit_ledger.c.idempotency_key.is_not(None),
            )
            .returning(
                credit_ledger.c.action,
                credit_ledger.c.enrollment_id,
                credit_ledger.c.student_id,
                credit_ledger.c.teacher_id,
            )
        )
    ).all()


async def release_reservations(
    conn: AsyncConnection, enrollment_ids: list[UUID], session_ids: list[UUID]
) -> list[UUID]:
    """A RELEASE for every RESERVE of these sessions that has none; the enrollment of each written."""
    reserve = credit_ledger.alias("reserve")
    r = reserve.c
    earlier = credit_ledger.alias("earlier")
    key = func.concat("RELEASE:", r.enrollment_id, ":", r.session_id, ":", r.student_id)
    unreleased = (
        select(
            r.enrollment_id,
            r.session_id,
            r.student_id,
            r.teacher_id,
            literal("RELEASE", enum("credit_action")),
            literal(1),
            literal("system", enum("credit_actor")),
            key,
        )
        .distinct()
        # the enrollment index finds the rows; the batch is a handful of enrollments
        .where(
            r.enrollment_id.in_(enrollment_ids),
            r.session_id.in_(session_ids),
            r.action == "RESERVE",
            ~select(earlier.c.id)
            .where(
                earlier.c.enrollment_id == r.enrollment_id,
                earlier.c.session_id == r.session_id,
                earlier.c.student_id == r.student_id,
                earlier.c.action == "RELEASE",
            )
            .exists(),
        )
    )
    columns = ["enrollment_id", "session_id", "student_id", "teacher_id", "action", "amount", "actor"]
    return list(
        (
            await conn.execute(
                insert(credit_ledger)
                .from_select([*columns, "idempotency_key"], unreleased)
                .on_conflict_do_nothing(
                    index_elements=[credit_ledger.c.idempotency_key],
                    index_where=credit_ledger.c.idempotency_key.is_not(None),
                )
                .returning(credit_ledger.c.enrollment_id)
            )
        ).scalars()
    )


async def move_scheduled(conn: AsyncConnection, deltas: Counter) -> None:
    """Add each enrollment's delta to ``sessions_scheduled`` (never below zero), in one statement."""
    deltas = Counter({k: n for k, n in deltas.items() if n})
    if not deltas:
        return
    moved = select(
        func.unnest(literal(list(deltas), type_=UUID_ARRAY)).label("enrollment_id"),
        func.unnest(literal(list(deltas.values()), type_=INT_ARRAY)).label("n"),
    ).subquery("moved")
    await conn.execute(
        update(enrollments)
        .where(e.id == moved.c.enrollment_id)
        .values(
            sessions_scheduled=func.greatest(func.coalesce(e.sessions_scheduled, 0) + moved.c.n, 0),
            updated_at=func.now(),
        )
    )


async def record_first_purchases(conn: AsyncConnection, grants: list) -> None:
    """``first_purchase`` for students whose GRANT this batch wrote and who never had one before."""
    buyers = {g.student_id: g for g in grants}
    if not buyers:
        return
    # Two batches confirming different enrollments of one student would both see no event yet:
    # a per-student transaction lock, taken in id order, makes the second one see the first's.
    await conn.execute(
        text(
            "SELECT pg_advisory_xact_lock(hashtextextended('jobfleet.first_purchase:' || s::text, 0)) "
            "FROM unnest(CAST(:students AS uuid[])) AS s"
        ),
        {"students": sorted(buyers)},
    )
    ev = student_lifecycle_events.c
    seen = set(
        (
            await conn.execute(
                select(ev.student_id).where(
                    ev.student_id.in_(list(buyers)), ev.event_type == "first_purchase"
                )
            )
        ).scalars()
    )
    events = [
        {
            "teacher_id": g.teacher_id,
            "student_id": student,
            "event_type": "first_purchase",
            "metadata": {"enrollment_id": str(g.enrollment_id), "source": "stripe_checkout"},
        }
        for student, g in buyers.items()
        if student not in seen
    ]
    if events:
        await conn.execute(student_lifecycle_events.insert().values(events))


async def audit(
    conn: AsyncConnection, holds: list[Hold], actor: str, action: str, checkouts: dict, reason: str
) -> None:
    if not holds:
        return
    await conn.execute(
        audit_logs.insert().values(
            [
                {
                    "teacher_id": h.teacher_id,
                    "actor_type": actor,
                    "action": action,
                    "entity_type": "class_session",
                    "entity_id": h.session_id,
                    "metadata": {"reason": reason}
                    | ({"checkout_session_id": checkouts[h.session_id]} if h.session_id in checkouts else {}),
                }
                for h in holds
            ]
        )
    )

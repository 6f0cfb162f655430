"""Settling holds in the database: confirm the paid ones, expire the rest, a batch at a time.

Every function takes a whole batch and costs a fixed number of statements. The caller locks the
holds (FOR UPDATE SKIP LOCKED) and then their enrollments through ``lock_enrollments``, in id order,
before anything here writes, so that batches sharing an enrollment queue up instead of deadlocking.
"""

from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import (
    CTE,
    Integer,
    String,
    Uuid,
    and_,
    case,
    column,
    func,
    literal,
    or_,
    select,
    text,
    update,
    values,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from db.arrays import is_any, unnest
from db.pinteach import (
    UUID_ARRAY,
    audit_logs,
    class_sessions,
    enrollments,
    enum,
    session_payment,
    student_lifecycle_events,
)
from jobs.credits import ledger
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

    def entry(self, action: str, amount: int, actor: str) -> dict:
        """This hold's ledger row for ``action`` (GRANT is per enrollment: no session)."""
        return ledger.row(
            action,
            amount,
            actor,
            enrollment_id=self.enrollment_id,
            session_id=None if action == "GRANT" else self.session_id,
            student_id=self.student_id,
            teacher_id=self.teacher_id,
        )


async def confirm(conn: AsyncConnection, paid: list[tuple[Hold, Checkout]], totals: dict) -> int:
    """Stripe says these holds were paid: book them as if the webhook had arrived. One statement
    (sessions, payments, ledger, enrollments, audit as CTEs), then the first-purchase events."""
    if not paid:
        return 0
    ids = [h.session_id for h, _ in paid]
    booked = (
        update(class_sessions)
        .where(cs.id.in_(ids), cs.status == "hold")
        .values(status="scheduled", updated_at=func.now())
        .cte("booked")
    )
    payments = values(
        column("session_id", Uuid),
        column("payment_intent_id", String),
        column("amount_paid", Integer),
        column("currency", String),
        name="stripe_says",
    ).data([(h.session_id, c.payment_intent_id, c.amount_total, c.currency) for h, c in paid])
    sp = session_payment.c
    recorded = (
        update(session_payment)
        .where(sp.session_id == payments.c.session_id)
        .values(
            stripe_payment_intent_id=func.coalesce(payments.c.payment_intent_id, sp.stripe_payment_intent_id),
            amount_paid=func.coalesce(payments.c.amount_paid, sp.amount_paid),
            currency=func.coalesce(payments.c.currency, sp.currency),
        )
        .cte("recorded")
    )
    audited = audit([(h, c.id) for h, c in paid], "stripe", "session.hold_confirmed", "paid", checkout=True)
    entries: dict[str, dict] = {}
    for h in (h for h, _ in paid if h.books_a_credit):
        total = totals.get(h.enrollment_id)
        for entry in (
            h.entry("GRANT", 1 if total is None else total, "stripe"),
            h.entry("RESERVE", 1, "system"),
        ):
            entries[entry["idempotency_key"]] = entry
    writes: list[CTE] = [booked, recorded, audited]
    enrollment_ids = sorted({h.enrollment_id for h, _ in paid if h.enrollment_id is not None})
    if not entries:
        if enrollment_ids:
            writes.append(activate(enrollment_ids, None))
        await conn.execute(select(func.count()).select_from(booked).add_cte(*writes))
        return len(paid)
    written = ledger.writes(list(entries.values())).cte("written")
    writes.append(activate(enrollment_ids, written))
    rows = (await conn.execute(select(written).add_cte(*writes))).all()
    await record_first_purchases(conn, [r for r in rows if r.action == "GRANT"])
    return len(paid)


def activate(enrollment_ids: list[UUID], written: CTE | None) -> CTE:
    """Paid enrollments become ``active``, and ``sessions_scheduled`` grows by the RESERVE rows
    this statement wrote: one UPDATE, as a row may be updated once per statement."""
    targets = select(func.unnest(literal(enrollment_ids, UUID_ARRAY)).label("enrollment_id")).subquery(
        "targets"
    )
    if written is None:
        counts = select(targets.c.enrollment_id, literal(0).label("n")).subquery("counts")
    else:
        reserved = (
            select(written.c.enrollment_id, func.count().label("n"))
            .where(written.c.action == "RESERVE")
            .group_by(written.c.enrollment_id)
            .subquery("reserved")
        )
        counts = (
            select(targets.c.enrollment_id, func.coalesce(reserved.c.n, 0).label("n"))
            .select_from(targets.outerjoin(reserved, reserved.c.enrollment_id == targets.c.enrollment_id))
            .subquery("counts")
        )
    pending = e.status == "pending_payment"
    return (
        update(enrollments)
        .where(e.id == counts.c.enrollment_id, or_(pending, counts.c.n > 0))
        .values(
            status=case((pending, literal("active", enum("enrollment_status"))), else_=e.status),
            sessions_scheduled=case(
                (counts.c.n > 0, ledger.scheduled_plus(counts.c.n)), else_=e.sessions_scheduled
            ),
            updated_at=func.now(),
        )
        .cte("activated")
    )


async def expire(conn: AsyncConnection, expiring: list[tuple[Hold, str]]) -> int:
    """Release these holds: the slot is free again and nothing was paid. One statement: the
    sessions, the RELEASE rows, the enrollments' counters and status, the audit rows are CTEs."""
    if not expiring:
        return 0
    holds = [h for h, _ in expiring]
    expired = (
        update(class_sessions)
        .where(is_any(cs.id, (h.session_id for h in holds)), cs.status == "hold")
        .values(status="expired", updated_at=func.now())
        .returning(cs.id)
        .cte("expired")
    )
    audited = audit(expiring, "system", "session.hold_expired", None)
    writes = [expired, audited]
    reserved = sorted({(h.enrollment_id, h.session_id) for h in holds if h.enrollment_id is not None})
    if reserved:
        writes.append(release_and_cancel(reserved, expired))
    await conn.execute(select(func.count()).select_from(expired).add_cte(*writes))
    return len(holds)


def release_and_cancel(reserved: list[tuple[UUID, UUID]], expired: CTE) -> CTE:
    """RELEASE what the expired holds reserved (``sessions_scheduled`` down by what was written),
    and cancel ``pending_payment`` enrollments left with no live session: one UPDATE, as a row may
    be updated once per statement. ``expired`` is not visible to this statement's snapshot, so the
    sessions it expires are left out of "live" by id."""
    released = ledger.releases(reserved).cte("released")
    moved = (
        select(released.c.enrollment_id, func.count().label("n"))
        .group_by(released.c.enrollment_id)
        .subquery()
    )
    targets = select(
        func.unnest(literal(sorted({enrollment for enrollment, _ in reserved}), UUID_ARRAY)).label(
            "enrollment_id"
        )
    ).subquery("targets")
    counts = (
        select(targets.c.enrollment_id, func.coalesce(moved.c.n, 0).label("n"))
        .select_from(targets.outerjoin(moved, moved.c.enrollment_id == targets.c.enrollment_id))
        .subquery("counts")
    )
    other = class_sessions.alias("other")
    still_used = select(other.c.id).where(
        other.c.enrollment_id == e.id,
        other.c.status != "expired",
        other.c.id.not_in(select(expired.c.id)),
    )
    unused = and_(e.status == "pending_payment", ~still_used.exists())
    return (
        update(enrollments)
        .where(e.id == counts.c.enrollment_id, or_(counts.c.n > 0, unused))
        .values(
            sessions_scheduled=case(
                (counts.c.n > 0, ledger.scheduled_plus(-counts.c.n)), else_=e.sessions_scheduled
            ),
            status=case((unused, literal("cancelled", enum("enrollment_status"))), else_=e.status),
            updated_at=func.now(),
        )
        .cte("released_and_cancelled")
    )


async def record_first_purchases(conn: AsyncConnection, grants: list) -> None:
    """``first_purchase`` for students whose GRANT this batch wrote and who never had one before."""
    buyers = {g.student_id: g for g in grants}
    if not buyers:
        return
    # Two batches confirming different enrollments of one student would both see no event yet:
    # a per-student transaction lock, taken in id order, makes the second one see the first's
    # (the insert below is a new statement, so its snapshot is taken after the lock).
    await conn.execute(
        text(
            "SELECT pg_advisory_xact_lock(hashtextextended('jobfleet.first_purchase:' || s::text, 0)) "
            "FROM unnest(CAST(:students AS uuid[])) AS s"
        ),
        {"students": sorted(buyers)},
    )
    ev = student_lifecycle_events.c
    firsts = unnest(
        "firsts",
        student_id=(buyers.keys(), Uuid),
        teacher_id=([g.teacher_id for g in buyers.values()], Uuid),
        enrollment_id=([str(g.enrollment_id) for g in buyers.values()], String),
    )
    await conn.execute(
        insert(student_lifecycle_events).from_select(
            ["teacher_id", "student_id", "event_type", "metadata"],
            select(
                firsts.c.teacher_id,
                firsts.c.student_id,
                literal("first_purchase", enum("lifecycle_event_type")),
                func.jsonb_build_object(
                    literal("enrollment_id", String),
                    firsts.c.enrollment_id,
                    literal("source", String),
                    literal("stripe_checkout", String),
                ),
            ).where(
                ~select(ev.id)
                .where(ev.student_id == firsts.c.student_id, ev.event_type == "first_purchase")
                .exists()
            ),
        )
    )


def audit(
    holds: list[tuple[Hold, str]], actor: str, action: str, reason: str | None, *, checkout: bool = False
) -> CTE:
    """One audit row per hold, as an INSERT CTE. Each hold comes with its reason, or with its
    Checkout Session's id (``checkout``) and the shared ``reason``."""
    batch = unnest(
        "audited_holds",
        session_id=([h.session_id for h, _ in holds], Uuid),
        teacher_id=([h.teacher_id for h, _ in holds], Uuid),
        detail=([d for _, d in holds], String),
    )
    b = batch.c
    metadata = (
        func.jsonb_build_object(
            literal("reason", String),
            literal(reason, String),
            literal("checkout_session_id", String),
            b.detail,
        )
        if checkout
        else func.jsonb_build_object(literal("reason", String), b.detail)
    )
    return (
        insert(audit_logs)
        .from_select(
            ["teacher_id", "actor_type", "action", "entity_type", "entity_id", "metadata"],
            select(
                b.teacher_id,
                literal(actor, enum("audit_actor_type")),
                literal(action, String),
                literal("class_session", String),
                b.session_id,
                metadata,
            ),
        )
        .cte("audited")
    )

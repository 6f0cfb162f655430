"""Who gets a waitlist seat: the rules shared by waitlist.expire_offers and waitlist.offer_next.

- The waitlist is a queue per service, by lowest ``position``. An offer makes the entry ``notified``
  with ``offer_expires_at = notified_at + the offer window`` and notifies the student.
- Free seats of a service with ``max_participants``: that, minus its enrollments ``active`` or
  ``pending_payment``, minus its open offers. A service without a cap has no seats to count; there
  an expired offer passes exactly its own seat on.
- Only services that are ``active`` (and not deleted) make offers.

Never two offers for one seat: whoever counts seats holds the service rows locked (``lock_services``)
until it commits, so promotions of one service run one after another, each seeing the offers of the
one before.
"""

from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import (
    CTE,
    ColumnElement,
    Integer,
    String,
    Uuid,
    case,
    cast,
    func,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from db.arrays import is_any, unnest
from db.pinteach import enrollments, notifications, services, waitlist_entries

w = waitlist_entries.c
s = services.c
SEAT_HOLDING = ("active", "pending_payment")


async def lock_services(conn: AsyncConnection, service_ids: Iterable[UUID]) -> list[UUID]:
    """Lock the services in id order (so two promoters never deadlock); return those that exist."""
    # NO KEY UPDATE serialises promoters without blocking the backend's inserts that reference
    # the service (their foreign keys take KEY SHARE).
    return list(
        (
            await conn.execute(
                select(s.id)
                .where(is_any(s.id, sorted(set(service_ids))))
                .order_by(s.id)
                .with_for_update(key_share=True)
            )
        ).scalars()
    )


def free_seats(passed_on: ColumnElement[int]) -> ColumnElement[int]:
    """Free seats of the service ``s`` (``passed_on`` where it has no cap). Count them with the
    services locked, in a statement that started after the lock was taken."""
    holding = (
        select(func.count())
        .where(enrollments.c.service_id == s.id, enrollments.c.status.in_(SEAT_HOLDING))
        .scalar_subquery()
    )
    open_offers = select(func.count()).where(w.service_id == s.id, w.status == "notified").scalar_subquery()
    return case(
        (or_(s.status != "active", s.deleted_at.is_not(None)), 0),
        (s.max_participants.is_(None), passed_on),
        else_=func.greatest(s.max_participants - holding - open_offers, 0),
    )


async def offer_seats(
    conn: AsyncConnection, passed_on: Mapping[UUID, int], *, window: timedelta
) -> list[Any]:
    """Offer each service's free seats to its next waiting entries and notify them, in one statement.

    ``passed_on``: per service, the seats to pass on where the service has no cap. Returns per
    service whether it has a cap and how many offers were made."""
    if not passed_on:
        return []
    wanted = unnest("wanted", service_id=(passed_on.keys(), Uuid), passed_on=(passed_on.values(), Integer))
    seats = (
        select(s.id.label("service_id"), s.max_participants.is_not(None).label("capped"))
        .add_columns(free_seats(wanted.c.passed_on).label("seats"))
        .join(wanted, wanted.c.service_id == s.id)
        .cte("seats")
    )
    # Per service, the index (service_id, status, position) yields the next in line in order.
    next_in_line = (
        select(w.id)
        .where(w.service_id == seats.c.service_id, w.status == "waiting")
        .order_by(w.position, w.created_at, w.id)
        .limit(seats.c.seats)
        .lateral("next_in_line")
    )
    offers = (
        update(waitlist_entries)
        .where(
            w.id.in_(select(next_in_line.c.id).select_from(seats).join(next_in_line, true())),
            w.status == "waiting",
        )
        .values(
            status="notified",
            notified_at=func.now(),
            offer_expires_at=func.now() + window,
            updated_at=func.now(),
        )
        .returning(w.id, w.teacher_id, w.service_id, w.student_id, w.offer_expires_at)
        .cte("offers")
    )
    o = offers.c
    told = notify(
        offers,
        "waitlist.offer",
        "A seat is free for you",
        "A seat has opened up. Enrol before the offer expires to take it.",
        offer_expires_at=func.to_jsonb(o.offer_expires_at),
    )
    made = select(func.count()).where(o.service_id == seats.c.service_id).scalar_subquery()
    return (
        await conn.execute(select(seats.c.service_id, seats.c.capped, made.label("offered")).add_cte(told))
    ).all()


def notify(entries: CTE, kind: str, title: str, body: str, **extra: ColumnElement) -> CTE:
    """The students of these waitlist entries get a ``kind`` notification: an INSERT as a CTE."""
    c = entries.c
    payload = func.jsonb_build_object(
        literal("waitlist_entry_id", String),
        cast(c.id, String),
        literal("service_id", String),
        cast(c.service_id, String),
    )
    for name, value in extra.items():
        payload = payload.op("||")(func.jsonb_build_object(literal(name, String), value))
    return (
        insert(notifications)
        .from_select(
            ["teacher_id", "student_id", "recipient_type", "type", "title", "body", "payload"],
            select(
                c.teacher_id,
                c.student_id,
                literal("student", String),
                literal(kind, String),
                literal(title, String),
                literal(body, String),
                payload,
            ),
        )
        .cte(f"told_{kind.replace('.', '_')}")
    )

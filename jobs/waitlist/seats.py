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

from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import Integer, Uuid, func, select, true, update
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


async def free_seats(conn: AsyncConnection, service_ids: Sequence[UUID]) -> dict[UUID, int | None]:
    """Free seats per service (None: the service has no cap). Call with the services locked."""
    holding = (
        select(func.count())
        .where(enrollments.c.service_id == s.id, enrollments.c.status.in_(SEAT_HOLDING))
        .scalar_subquery()
    )
    open_offers = select(func.count()).where(w.service_id == s.id, w.status == "notified").scalar_subquery()
    rows = await conn.execute(
        select(
            s.id,
            s.status,
            s.deleted_at,
            s.max_participants,
            holding.label("holding"),
            open_offers.label("offered"),
        ).where(is_any(s.id, service_ids))
    )
    return {
        r.id: (
            0
            if r.status != "active" or r.deleted_at is not None
            else None
            if r.max_participants is None
            else max(r.max_participants - r.holding - r.offered, 0)
        )
        for r in rows
    }


async def make_offers(conn: AsyncConnection, seats: Mapping[UUID, int], *, window: timedelta) -> list[Any]:
    """Offer ``seats[service]`` seats of each service to its next waiting entries; return the offers."""
    seats = {service: n for service, n in seats.items() if n > 0}
    if not seats:
        return []
    wanted = unnest("wanted", service_id=(seats, Uuid), seats=(seats.values(), Integer))
    # Per service, the index (service_id, status, position) yields the next in line in order.
    next_in_line = (
        select(w.id)
        .where(w.service_id == wanted.c.service_id, w.status == "waiting")
        .order_by(w.position, w.created_at, w.id)
        .limit(wanted.c.seats)
        .lateral("next_in_line")
    )
    return list(
        (
            await conn.execute(
                update(waitlist_entries)
                .where(
                    w.id.in_(select(next_in_line.c.id).select_from(wanted).join(next_in_line, true())),
                    w.status == "waiting",
                )
                .values(
                    status="notified",
                    notified_at=func.now(),
                    offer_expires_at=func.now() + window,
                    updated_at=func.now(),
                )
                .returning(w.id, w.teacher_id, w.service_id, w.student_id, w.position, w.offer_expires_at)
            )
        ).all()
    )


async def notify_students(conn: AsyncConnection, *, offers: Sequence[Any], expired: Sequence[Any]) -> None:
    rows = [
        {
            "teacher_id": e.teacher_id,
            "student_id": e.student_id,
            "recipient_type": "student",
            "type": "waitlist.offer_expired",
            "title": "Your waitlist offer has expired",
            "body": "The seat we held for you has passed to the next person on the waitlist.",
            "payload": {"waitlist_entry_id": str(e.id), "service_id": str(e.service_id)},
        }
        for e in expired
    ] + [
        {
            "teacher_id": o.teacher_id,
            "student_id": o.student_id,
            "recipient_type": "student",
            "type": "waitlist.offer",
            "title": "A seat is free for you",
            "body": "A seat has opened up. Enrol before the offer expires to take it.",
            "payload": {
                "waitlist_entry_id": str(o.id),
                "service_id": str(o.service_id),
                "offer_expires_at": o.offer_expires_at.isoformat(),
            },
        }
        for o in offers
    ]
    if rows:
        await conn.execute(notifications.insert().values(rows))

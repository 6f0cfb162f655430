"""waitlist.expire_offers: expire 48-hour offers that ran out and pass each seat to the next in line.

- Due: entries ``notified`` whose ``offer_expires_at`` has passed. They become ``expired`` and the
  student is told (``waitlist.offer_expired``).
- Then every free seat of those services is offered to the next ``waiting`` entries by position
  (``waitlist.offer``); for a service without a cap, each expired offer passes its one seat on.

Two statements per batch: the first locks the due entries, then their services in id order, expires
the entries and tells their students (CTEs); the second, with a snapshot taken after the services
were locked, counts the free seats, makes the offers and notifies (``jobs.waitlist.seats``).

Exactly once: due entries are locked FOR UPDATE SKIP LOCKED, so concurrent sweeps take disjoint
batches; their services are locked in id order, which serialises this sweep's promotions with any
other sweep's and with waitlist.offer_next, so seats are counted after the others' offers. No index
serves ``offer_expires_at``, so there is no keyset cursor to walk: each batch reads the waitlist.
"""

from datetime import timedelta

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from db.pinteach import services, waitlist_entries
from jobfleet.payloads import Sweep
from jobs.deps import Deps
from jobs.sweep import Taken, sweep_in_transactions
from jobs.waitlist.seats import notify, offer_seats

log = structlog.get_logger()
SUMMARY_KEYS = ("offers_expired", "offers_made")
w = waitlist_entries.c


async def run(deps: Deps, payload: Sweep) -> dict[str, int]:
    window = timedelta(hours=deps.settings.waitlist_offer_hours)

    async def step(conn: AsyncConnection, limit: int, cursor: None) -> Taken:
        return Taken(*await expire_batch(conn, window=window, limit=limit))

    return await sweep_in_transactions(
        deps.pinteach,
        step,
        settings=deps.settings,
        keys=SUMMARY_KEYS,
    )


async def expire_batch(conn: AsyncConnection, *, window: timedelta, limit: int) -> tuple[int, dict[str, int]]:
    # One statement: lock the due entries, then their services in id order, expire the entries and
    # tell their students. No index leads with offer_expires_at (the schema's is service_id, status,
    # position), so this reads the waitlist; it is locked row by row only where due.
    due = (
        select(w.id, w.service_id)
        .where(w.status == "notified", w.offer_expires_at <= func.now())
        .order_by(w.offer_expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("due")
        .prefix_with("MATERIALIZED")
    )
    locked = (
        select(services.c.id)
        .where(services.c.id.in_(select(due.c.service_id)))
        .order_by(services.c.id)
        .with_for_update(key_share=True)
        .cte("locked_services")
        .prefix_with("MATERIALIZED")
    )
    expired = (
        update(waitlist_entries)
        .where(w.id == due.c.id, w.status == "notified")
        .values(status="expired", updated_at=func.now())
        .returning(w.id, w.teacher_id, w.service_id, w.student_id)
        .cte("expired")
    )
    told = notify(
        expired,
        "waitlist.offer_expired",
        "Your waitlist offer has expired",
        "The seat we held for you has passed to the next person on the waitlist.",
    )
    rows = (
        await conn.execute(
            select(
                expired.c.service_id,
                func.count().label("n"),
                select(func.count()).select_from(due).scalar_subquery().label("taken"),
                select(func.count()).select_from(locked).scalar_subquery().label("locked"),
            )
            .group_by(expired.c.service_id)
            .add_cte(told)
        )
    ).all()
    if not rows:  # every due entry locked is expired: no rows, nothing was due
        return 0, {}
    # A new statement, so a new snapshot: with the services locked, the seats are counted after
    # every offer another promoter committed.
    passed_on = {r.service_id: r.n for r in rows}
    offered = await offer_seats(conn, passed_on, window=window)
    made = sum(o.offered for o in offered)
    expired_n = sum(passed_on.values())
    log.info("waitlist_offers_expired", expired=expired_n, offered=made, services=len(passed_on))
    return rows[0].taken, {"offers_expired": expired_n, "offers_made": made}

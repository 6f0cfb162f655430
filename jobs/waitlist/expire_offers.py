"""waitlist.expire_offers: expire 48-hour offers that ran out and pass each seat to the next in line.

- Due: entries ``notified`` whose ``offer_expires_at`` has passed. They become ``expired`` and the
  student is told (``waitlist.offer_expired``).
- Then every free seat of those services is offered to the next ``waiting`` entries by position
  (``waitlist.offer``); for a service without a cap, each expired offer passes its one seat on.

Exactly once: due entries are locked FOR UPDATE SKIP LOCKED, so concurrent sweeps take disjoint
batches; then their services are locked in id order, which serialises this sweep's promotions with
any other sweep's and with waitlist.offer_next, so seats are counted after the others' offers.
"""

from collections import Counter
from datetime import timedelta
from functools import partial

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from db.arrays import is_any
from db.pinteach import waitlist_entries
from jobfleet.payloads import Sweep
from jobs.deps import Deps
from jobs.sweep import sweep_in_transactions
from jobs.waitlist.seats import free_seats, lock_services, make_offers, notify_students

log = structlog.get_logger()
SUMMARY_KEYS = ("offers_expired", "offers_made")
w = waitlist_entries.c


async def run(deps: Deps, payload: Sweep) -> dict[str, int]:
    window = timedelta(hours=deps.settings.waitlist_offer_hours)
    batch_size = deps.settings.sweep_batch_size

    return await sweep_in_transactions(
        deps.pinteach,
        partial(expire_batch, window=window, limit=batch_size),
        budget_s=deps.settings.sweep_budget_s,
        keys=SUMMARY_KEYS,
    )


async def expire_batch(conn: AsyncConnection, *, window: timedelta, limit: int) -> tuple[int, dict[str, int]]:
    # No index leads with offer_expires_at (the schema's is service_id, status, position), so this
    # reads the waitlist; it is locked row by row only where due.
    due = (
        await conn.execute(
            select(w.id, w.service_id)
            .where(w.status == "notified", w.offer_expires_at <= func.now())
            .order_by(w.offer_expires_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()
    if not due:
        return 0, {}
    await lock_services(conn, (d.service_id for d in due))
    expired = (
        await conn.execute(
            update(waitlist_entries)
            .where(is_any(w.id, [d.id for d in due]), w.status == "notified")
            .values(status="expired", updated_at=func.now())
            .returning(w.id, w.teacher_id, w.service_id, w.student_id)
        )
    ).all()
    passed_on = Counter(e.service_id for e in expired)
    seats = {
        service: passed_on[service] if free is None else free
        for service, free in (await free_seats(conn, list(passed_on))).items()
    }
    offers = await make_offers(conn, seats, window=window)
    await notify_students(conn, offers=offers, expired=expired)
    log.info("waitlist_offers_expired", expired=len(expired), offered=len(offers), services=len(passed_on))
    return len(due), {"offers_expired": len(expired), "offers_made": len(offers)}

"""reviews.expire: pending review requests past ``expires_at`` become ``expired``.

Batches through the (status, expires_at) index, locked FOR UPDATE SKIP LOCKED, so that concurrent
sweeps take disjoint rows and the cost grows with the requests due, not the table; each batch is
one statement (lock and update), sized by time like every sweep.

Keyset cursor: the next batch starts at the latest ``expires_at`` the previous one expired, so it
does not re-read the entries earlier batches left dead. A request skipped because another run held
it is expired by that run, or by the next tick, which starts from the beginning.
"""

from typing import Any

from sqlalchemy import func, select, true, update
from sqlalchemy.ext.asyncio import AsyncConnection

from db.pinteach import review_requests
from jobfleet.payloads import Sweep
from jobs.deps import Deps
from jobs.optional_tables import migration_missing
from jobs.sweep import Taken, sweep_in_transactions

SUMMARY_KEYS = ("expired",)
r = review_requests.c


async def run(deps: Deps, payload: Sweep) -> dict[str, int]:
    if await migration_missing(deps.pinteach, "reviews.expire", review_requests):
        return {"expired": 0, "migration_missing": 1}
    return await sweep_in_transactions(deps.pinteach, expire_batch, settings=deps.settings, keys=SUMMARY_KEYS)


async def expire_batch(conn: AsyncConnection, limit: int, after: Any = None) -> Taken:
    due = (
        select(r.id)
        .where(r.status == "pending", r.expires_at <= func.now(), r.expires_at >= after if after else true())
        .order_by(r.status, r.expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    expired = (
        (
            await conn.execute(
                update(review_requests)
                .where(r.id.in_(due))
                .values(status="expired", updated_at=func.now())
                .returning(r.expires_at)
            )
        )
        .scalars()
        .all()
    )
    return Taken(len(expired), {"expired": len(expired)}, max(expired, default=after))

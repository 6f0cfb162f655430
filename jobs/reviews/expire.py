"""reviews.expire: pending review requests past ``expires_at`` become ``expired``.

Batches through the (status, expires_at) index, locked FOR UPDATE SKIP LOCKED, so that concurrent
sweeps take disjoint rows and the cost grows with the requests due, not the table.
"""

from functools import partial

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from db.arrays import is_any
from db.pinteach import review_requests
from jobfleet.payloads import Sweep
from jobs.deps import Deps
from jobs.optional_tables import migration_missing
from jobs.sweep import sweep_in_transactions

SUMMARY_KEYS = ("expired",)
r = review_requests.c


async def run(deps: Deps, payload: Sweep) -> dict[str, int]:
    if await migration_missing(deps.pinteach, "reviews.expire", review_requests):
        return {"expired": 0, "migration_missing": 1}
    return await sweep_in_transactions(
        deps.pinteach,
        partial(expire_batch, limit=deps.settings.sweep_batch_size),
        budget_s=deps.settings.sweep_budget_s,
        keys=SUMMARY_KEYS,
    )


async def expire_batch(conn: AsyncConnection, *, limit: int) -> tuple[int, dict[str, int]]:
    due = list(
        (
            await conn.execute(
                select(r.id)
                .where(r.status == "pending", r.expires_at <= func.now())
                .order_by(r.status, r.expires_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).scalars()
    )
    if due:
        await conn.execute(
            update(review_requests).where(is_any(r.id, due)).values(status="expired", updated_at=func.now())
        )
    return len(due), {"expired": len(due)}

"""gdpr.erase_due: erase the students whose erasure request is due, and finish interrupted ones.

Due: ``pending`` with ``due_at <= now()``; ``processing`` requests (a crashed or failed earlier
run) are taken again. Each batch is claimed with FOR UPDATE SKIP LOCKED and marked ``processing``
in one statement, its own transaction; each request is then erased in a transaction of its own
(jobs.gdpr.erasure). A request that fails (Drive refused) counts as failed, stays
``processing``, and is not tried again in this run: the next sweep retries it.
"""

from collections import Counter
from uuid import UUID

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from db.pinteach import data_erasure_requests
from jobfleet.payloads import Sweep
from jobs.deps import Deps
from jobs.errors import JobError
from jobs.gdpr.erasure import SUMMARY_KEYS, erase_request
from jobs.sweep import sweep

r = data_erasure_requests.c


async def run(deps: Deps, payload: Sweep) -> dict[str, int]:
    tried: set[UUID] = set()

    async def batch() -> tuple[int, dict[str, int]]:
        request_ids = await claim(deps.pinteach, limit=deps.settings.gdpr_erase_batch_size, tried=tried)
        tried.update(request_ids)
        counts: Counter[str] = Counter()
        for request_id in request_ids:
            try:
                if await erase_request(deps, request_id):
                    counts["erased"] += 1
            except JobError:  # logged by erase_request; the request stays processing
                counts["failed"] += 1
        return len(request_ids), counts

    return await sweep(batch, budget_s=deps.settings.sweep_budget_s, keys=SUMMARY_KEYS)


async def claim(engine: AsyncEngine, *, limit: int, tried: set[UUID]) -> list[UUID]:
    """Lock a batch of due requests and mark the pending ones ``processing``: one statement."""
    claimed = (
        select(r.id, r.due_at)
        .where(
            or_(and_(r.status == "pending", r.due_at <= func.now()), r.status == "processing"),
            r.id.not_in(tried),
        )
        .order_by(r.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("claimed")
        .prefix_with("MATERIALIZED")
    )
    marked = (
        update(data_erasure_requests)
        .where(r.id == claimed.c.id, r.status == "pending")
        .values(status="processing", updated_at=func.now())
        .cte("marked")
    )
    async with engine.begin() as conn:
        rows = await conn.execute(select(claimed.c.id).order_by(claimed.c.due_at).add_cte(marked))
        return list(rows.scalars())

"""messages.deliver_due: deliver pending messages whose time has passed and whose job never did.

The safety net for a lost or never-enqueued messages.deliver job. Due messages are locked FOR
UPDATE SKIP LOCKED, so concurrent sweeps take disjoint batches, and a message that a queued job is
delivering right now is skipped (that job delivers it).
"""

from functools import partial

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from db.pinteach import scheduled_messages
from jobfleet.payloads import Sweep
from jobs.deps import Deps
from jobs.messages.delivery import DUE, deliver_messages
from jobs.sweep import lock_due, sweep_in_transactions

log = structlog.get_logger()
SUMMARY_KEYS = ("delivered",)
m = scheduled_messages.c


async def run(deps: Deps, payload: Sweep) -> dict[str, int]:
    batch_size = deps.settings.sweep_batch_size

    return await sweep_in_transactions(
        deps.pinteach,
        partial(deliver_batch, limit=batch_size),
        budget_s=deps.settings.sweep_budget_s,
        keys=SUMMARY_KEYS,
    )


async def deliver_batch(conn: AsyncConnection, *, limit: int) -> tuple[int, dict[str, int]]:
    # index order (status, scheduled_for)
    due_ids = await lock_due(conn, m.id, *DUE, order_by=[m.status, m.scheduled_for], limit=limit)
    if not due_ids:
        return 0, {}
    delivered = await deliver_messages(conn, due_ids)
    log.info("scheduled_messages_delivered", due=len(due_ids), delivered=len(delivered))
    return len(due_ids), {"delivered": len(delivered)}

"""messages.deliver_due: deliver pending messages whose time has passed and whose job never did.

The safety net for a lost or never-enqueued messages.deliver job. One statement per batch: due
messages are locked FOR UPDATE SKIP LOCKED and delivered (``jobs.messages.delivery``) in CTEs of
the same statement. Concurrent sweeps take disjoint batches, and a message that a queued job is
delivering right now is skipped (that job delivers it).

Keyset cursor: each batch starts at the ``scheduled_for`` of the last message the previous one
locked, so it does not re-read the index entries of messages already sent. A message skipped
because another transaction held it is delivered by that holder; if the holder rolls back, it is
still pending and due, and the next sweep (the next tick at the latest, which starts from the
beginning of the index) delivers it.
"""

from datetime import datetime

import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from db.pinteach import scheduled_messages
from jobfleet.payloads import Sweep
from jobs.deps import Deps
from jobs.messages.delivery import DUE, deliver
from jobs.sweep import Taken, sweep_in_transactions

log = structlog.get_logger()
SUMMARY_KEYS = ("delivered",)
m = scheduled_messages.c


async def run(deps: Deps, payload: Sweep) -> dict[str, int]:
    return await sweep_in_transactions(
        deps.pinteach,
        _step,
        settings=deps.settings,
        keys=SUMMARY_KEYS,
    )


async def _step(conn: AsyncConnection, limit: int, cursor: datetime | None) -> Taken:
    return await deliver_batch(conn, limit=limit, after=cursor)


async def deliver_batch(conn: AsyncConnection, *, limit: int, after: datetime | None = None) -> Taken:
    keyset = () if after is None else (m.scheduled_for >= after,)
    due = (
        select(m.id, m.scheduled_for)
        .where(*DUE, *keyset)
        # index order (status, scheduled_for): the scan stops after `limit` rows
        .order_by(m.status, m.scheduled_for)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("due")
        .prefix_with("MATERIALIZED")
    )
    sent, writes = deliver(m.id == due.c.id)
    row = (
        await conn.execute(
            select(
                select(func.count()).select_from(due).scalar_subquery().label("taken"),
                select(func.max(due.c.scheduled_for)).scalar_subquery().label("last"),
                select(func.count()).select_from(sent).scalar_subquery().label("delivered"),
            ).add_cte(*writes)
        )
    ).one()
    if not row.taken:
        return Taken(0)
    log.info("scheduled_messages_delivered", due=row.taken, delivered=row.delivered)
    return Taken(row.taken, {"delivered": row.delivered}, row.last)

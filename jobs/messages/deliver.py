"""messages.deliver: deliver one scheduled message when its deferred job comes due.

Enqueued by the backend, deferred until ``scheduled_for``, keyed by the message id. A message that
is already ``sent`` (by messages.deliver_due, or an earlier try) or ``cancelled`` is left alone; one
whose time has not come (rescheduled, while this job was not cancelled) is left for its new job or
the sweep.
"""

import structlog
from sqlalchemy import func, select

from db.pinteach import scheduled_messages
from jobfleet.payloads import MessageRef
from jobs.deps import Deps
from jobs.errors import NotFound
from jobs.messages.delivery import deliver_messages

log = structlog.get_logger()
m = scheduled_messages.c


async def run(deps: Deps, payload: MessageRef) -> dict[str, int]:
    async with deps.pinteach.begin() as conn:
        # Waits (no SKIP LOCKED) for a sweep delivering it, and then sees it sent.
        message = (
            await conn.execute(
                select(m.status, (m.scheduled_for <= func.now()).label("due"))
                .where(m.id == payload.message_id)
                .with_for_update()
            )
        ).one_or_none()
        if message is None:
            raise NotFound(f"scheduled message {payload.message_id} does not exist")
        if message.status != "pending" or not message.due:
            log.info(
                "scheduled_message_not_delivered",
                message_id=str(payload.message_id),
                status=message.status,
                due=message.due,
            )
            return {"delivered": 0}
        delivered = await deliver_messages(conn, [payload.message_id])
    log.info("scheduled_message_delivered", message_id=str(payload.message_id))
    return {"delivered": len(delivered)}

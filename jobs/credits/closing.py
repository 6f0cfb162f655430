"""When an enrollment is finished: the rule shared by every job that moves its counters."""

from uuid import UUID

from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncConnection

from db.pinteach import enrollments

e = enrollments.c
REMAINING = (
    e.sessions_total
    - func.coalesce(e.sessions_scheduled, 0)
    - func.coalesce(e.sessions_completed, 0)
    - func.coalesce(e.sessions_cancelled, 0)
    - func.coalesce(e.sessions_forfeited, 0)
)


async def close_finished_enrollments(conn: AsyncConnection, enrollment_ids: list[UUID]) -> int:
    """An active enrollment with a credit count and nothing left, used or booked, is completed."""
    if not enrollment_ids:
        return 0
    result = await conn.execute(
        update(enrollments)
        .where(
            e.id.in_(enrollment_ids),
            e.status == "active",
            e.sessions_total.is_not(None),
            func.coalesce(e.sessions_scheduled, 0) == 0,
            REMAINING <= 0,
        )
        .values(status="completed", updated_at=func.now())
    )
    return result.rowcount

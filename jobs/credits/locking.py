"""The one order in which every credit job locks enrollments."""

from collections.abc import Iterable
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from db.pinteach import enrollments


async def lock_enrollments(conn: AsyncConnection, ids: Iterable[UUID]) -> dict[UUID, int | None]:
    """Lock the enrollments in id order before anything references them, so that batches sharing
    enrollments queue up instead of deadlocking; NO KEY UPDATE still lets the ledger's foreign key
    take its KEY SHARE lock. Returns each enrollment's ``sessions_total``."""
    ordered = sorted(set(ids))
    if not ordered:
        return {}
    rows = await conn.execute(
        select(enrollments.c.id, enrollments.c.sessions_total)
        .where(enrollments.c.id.in_(ordered))
        .order_by(enrollments.c.id)
        .with_for_update(key_share=True)
    )
    return dict(rows.all())

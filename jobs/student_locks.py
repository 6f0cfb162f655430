"""The one order in which jobs lock students (lifecycle, review requests, retention erasure)."""

from collections.abc import Iterable
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from db.arrays import is_any
from db.pinteach import students


async def lock_students(conn: AsyncConnection, ids: Iterable[UUID]) -> list[UUID]:
    """Lock the students in id order, so that two batches sharing students queue up instead of
    deadlocking, and return those that exist. NO KEY UPDATE: sessions and enrollments that the
    backend inserts meanwhile (their foreign keys take KEY SHARE) are not held up.

    A job that writes rows "once per student" takes this lock first and checks for an existing row
    in a later statement of the same transaction: under READ COMMITTED that statement sees what
    any earlier holder of the lock committed, so two concurrent runs cannot both write."""
    ordered = sorted(set(ids))
    if not ordered:
        return []
    rows = await conn.execute(
        select(students.c.id)
        .where(is_any(students.c.id, ordered))
        .order_by(students.c.id)
        .with_for_update(key_share=True)
    )
    return list(rows.scalars())

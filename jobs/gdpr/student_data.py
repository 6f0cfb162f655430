"""What the erasure does to a student's data: one function per rule, run in the caller's transaction.

Which data is personal, and so cleared, is listed once in jobs.gdpr.personal_data.
"""

from collections import Counter
from uuid import UUID

from sqlalchemy import func, null, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from db.pinteach import (
    class_sessions,
    notifications,
    session_calendar_sync,
    session_content,
    session_participants,
    students,
)
from jobs.credits import ledger
from jobs.credits.locking import lock_enrollments
from jobs.gdpr.personal_data import (
    DELETED_WITH_STUDENT,
    ERASED_NAME,
    SESSION_CONTENT_CLEARED,
    STUDENT_COLUMNS_CLEARED,
    erased_email,
)

# Sessions still to happen; any other status has ended, been cancelled or moved.
OPEN_STATUSES = ("hold", "pending_confirmation", "scheduled")

cs = class_sessions.c


async def erase_student_data(conn: AsyncConnection, student_id: UUID) -> dict[str, int]:
    await anonymise_student(conn, student_id)
    for table in DELETED_WITH_STUDENT:
        await conn.execute(table.delete().where(table.c.student_id == student_id))
    # notifications for the student, or for the teacher about them
    await conn.execute(
        notifications.delete().where(
            or_(
                notifications.c.student_id == student_id,
                notifications.c.payload["student_id"].astext == str(student_id),
            )
        )
    )
    await conn.execute(
        update(session_content)
        .where(session_content.c.session_id.in_(select(cs.id).where(cs.student_id == student_id)))
        .values(dict.fromkeys(SESSION_CONTENT_CLEARED, null()))
    )
    return await cancel_future_sessions(conn, student_id)


async def anonymise_student(conn: AsyncConnection, student_id: UUID) -> None:
    await conn.execute(
        update(students)
        .where(students.c.id == student_id)
        .values(
            # SQL NULL: for preferred_days (jsonb) a Python None would write the JSON null
            **dict.fromkeys(STUDENT_COLUMNS_CLEARED, null()),
            name=ERASED_NAME,
            email=erased_email(student_id),
            deleted_at=func.coalesce(students.c.deleted_at, func.now()),
            status="archived",
            updated_at=func.now(),
        )
    )


async def cancel_future_sessions(conn: AsyncConnection, student_id: UUID) -> dict[str, int]:
    """Cancel the student's future sessions (and seats in group sessions) and release their credits."""
    upcoming = (cs.starts_at > func.now(), cs.ends_at > func.now(), cs.status.in_(OPEN_STATUSES))
    own = (
        await conn.execute(
            update(class_sessions)
            .where(cs.student_id == student_id, *upcoming)
            .values(status="cancelled_system", updated_at=func.now())
            .returning(cs.id, cs.enrollment_id)
        )
    ).all()
    # A group session goes on for the others: only the student's seat is cancelled.
    seats = (
        await conn.execute(
            update(session_participants)
            .where(
                session_participants.c.student_id == student_id,
                session_participants.c.status == "confirmed",
                session_participants.c.session_id == cs.id,
                *upcoming,
            )
            .values(status="cancelled")
            .returning(session_participants.c.session_id, session_participants.c.enrollment_id)
        )
    ).all()
    changed = [s.id for s in own] + [s.session_id for s in seats]
    if changed:
        # the calendar sync removes the event, or the student from a group's event
        await conn.execute(
            update(session_calendar_sync)
            .where(session_calendar_sync.c.session_id.in_(changed))
            .values(sync_status="pending", updated_at=func.now())
        )
    held = [(s.enrollment_id, s.id) for s in own if s.enrollment_id is not None]
    held += [(s.enrollment_id, s.session_id) for s in seats]
    released = await release_credits(conn, student_id, held)
    return {"sessions_cancelled": len(own), "seats_cancelled": len(seats), "credits_released": released}


async def release_credits(conn: AsyncConnection, student_id: UUID, held: list[tuple[UUID, UUID]]) -> int:
    """A RELEASE for each (enrollment, session) with a RESERVE and no RELEASE; sessions_scheduled - 1."""
    if not held:
        return 0
    await lock_enrollments(conn, (e for e, _ in held))
    per_enrollment = Counter(await ledger.release(conn, held, ledger.RESERVE.c.student_id == student_id))
    await ledger.move_scheduled(conn, Counter({k: -n for k, n in per_enrollment.items()}))
    return per_enrollment.total()

"""Demo data for the waitlist: offers that have lapsed or are about to, and students queueing."""

from datetime import timedelta
from uuid import UUID

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncConnection

from db.pinteach import enrollments, waitlist_entries
from demo import rows
from demo.rows import demo_service, demo_students, demo_teacher, insert


async def seed_demo(conn: AsyncConnection, teacher_id: UUID | None = None) -> dict[str, UUID]:
    """A group service of 4 seats: 2 taken, an offer that lapsed a minute ago, an offer that lapses
    45 seconds from now, and 3 students waiting. waitlist.expire_offers passes the first seat on at
    its next run and the second a minute later. Returns the service id and the entry ids by role."""
    teacher_id = teacher_id or await demo_teacher(conn)
    service_id = await demo_service(
        conn, teacher_id, "Saturday ensemble", group_type="group", structure="course", max_participants=4
    )
    enrolled_1, enrolled_2, lapsed, lapsing, *waiting = await demo_students(conn, teacher_id, 7)
    now = func.now()
    for student_id in (enrolled_1, enrolled_2):
        await insert(
            conn,
            enrollments,
            **rows.enrollment(
                service_id,
                student_id,
                teacher_id,
                now - timedelta(days=7),
                now + timedelta(days=120),
                sessions_total=12,
            ),
        )

    async def entry(student_id: UUID, position: int, expires_in: timedelta | None = None) -> UUID:
        offer = {}
        if expires_in is not None:
            expires_at = now + expires_in
            offer = {
                "status": "notified",
                "notified_at": expires_at - timedelta(hours=48),
                "offer_expires_at": expires_at,
            }
        return await insert(
            conn,
            waitlist_entries,
            teacher_id=teacher_id,
            service_id=service_id,
            student_id=student_id,
            position=position,
            **offer,
        )

    ids = {
        "service": service_id,
        "lapsed_offer": await entry(lapsed, 1, timedelta(minutes=-1)),
        "lapsing_offer": await entry(lapsing, 2, timedelta(seconds=45)),
    }
    for position, student_id in enumerate(waiting, start=3):
        ids[f"waiting_{position}"] = await entry(student_id, position)
    return ids

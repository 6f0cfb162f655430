"""Demo data for credits.expire: enrollments whose credits expire, wait, close or get a notice."""

from datetime import timedelta
from uuid import UUID

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncConnection

from db.pinteach import class_sessions, enrollments
from demo import rows
from demo.rows import demo_service, demo_students, demo_teacher, insert


async def seed_demo(conn: AsyncConnection, teacher_id: UUID | None = None) -> dict[str, UUID]:
    """Five enrollments of one teacher (made up if not given); credits.expire (and, for the booked
    session, sessions.auto_complete) acts on each at its next run. Returns the enrollment ids by role."""
    teacher_id = teacher_id or await demo_teacher(conn)
    package = await demo_service(conn, teacher_id, "Piano: 10 lessons", session_count=10)
    monthly = await demo_service(
        conn, teacher_id, "Piano: monthly", structure="subscription", billing_interval="monthly"
    )
    lapsed, booked, subscriber, soon, used_up = await demo_students(conn, teacher_id, 5)
    now = func.now()

    async def enrollment(student_id: UUID, service_id: UUID, valid_until, **counters) -> UUID:
        return await insert(
            conn,
            enrollments,
            **rows.enrollment(
                service_id, student_id, teacher_id, now - timedelta(days=90), valid_until, **counters
            ),
        )

    ids = {
        # 6 unused credits expire; the enrollment becomes expired
        "expires": await enrollment(
            lapsed, package, now - timedelta(days=1), sessions_total=10, sessions_completed=4
        ),
        # 4 unused credits expire, but a booked session is honoured: it stays active until that
        # session is auto-completed, which closes it as expired
        "honours_booking": await enrollment(
            booked,
            package,
            now - timedelta(hours=2),
            sessions_total=8,
            sessions_completed=3,
            sessions_scheduled=1,
        ),
        # unlimited: expired at valid_until, no ledger row
        "unlimited": await enrollment(subscriber, monthly, now - timedelta(hours=1), sessions_total=None),
        # 7 credits left and 3 days to go: one expiry notice, never a second
        "notice": await enrollment(
            soon, package, now + timedelta(days=3), sessions_total=12, sessions_completed=5
        ),
        # every credit used: closed as completed, nothing forfeited
        "completes": await enrollment(
            used_up, package, now - timedelta(hours=5), sessions_total=10, sessions_completed=10
        ),
    }
    ended = now - timedelta(minutes=20)
    await insert(
        conn,
        class_sessions,
        **rows.session(
            package,
            teacher_id,
            ended,
            timedelta(hours=1),
            enrollment_id=ids["honours_booking"],
            student_id=booked,
            timezone="UTC",
        ),
    )
    return ids

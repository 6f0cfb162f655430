"""Demo data for review requests: a teacher who asks after three lessons, in the app.

reviews.request_due asks Eva (three lessons done) at once; sessions.auto_complete completes Finn's
third lesson, which ended an hour ago, and asks for a reviews.request_due run for this teacher
after its commit, which then asks Finn; reviews.expire expires Gus's request, past due yesterday.
"""

import secrets
from datetime import UTC, datetime, timedelta
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from db.pinteach import review_requests, review_settings
from demo.lifecycle import demo_enrollment, demo_session
from demo.rows import demo_service, demo_students, demo_teacher, insert


async def seed_demo(conn: AsyncConnection) -> dict[str, UUID]:
    now = datetime.now(UTC)
    teacher = await demo_teacher(conn)
    await conn.execute(
        review_settings.insert().values(
            teacher_id=teacher, auto_request=True, after_completed_sessions=3, channel="in_app"
        )
    )
    service = await demo_service(conn, teacher, "Piano lessons")
    eva, finn, gus = await demo_students(conn, teacher, 3)
    for student, done, due in ((eva, 3, False), (finn, 2, True), (gus, 1, False)):
        ids = {"teacher": teacher, "service": service, "student": student}
        ids["enrollment"] = await demo_enrollment(
            conn, ids, sessions_completed=done, sessions_scheduled=int(due)
        )
        for week in range(done):
            await demo_session(conn, ids, now - timedelta(days=3 + 7 * week), "completed")
        if due:  # ended an hour ago: sessions.auto_complete completes it
            await demo_session(conn, ids, now - timedelta(hours=1), "scheduled")
    request = await insert(
        conn,
        review_requests,
        teacher_id=teacher,
        student_id=gus,
        channel="link",
        token=secrets.token_urlsafe(32),
        expires_at=now - timedelta(days=1),
    )
    return {"teacher": teacher, "asked": eva, "completes": finn, "expired_request": request}

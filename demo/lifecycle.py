"""Demo data for lifecycle.detect: one teacher's students, each about to show one rule.

One run writes: a gap for Ana (active enrollment, last lesson 10 days ago, teacher's gap: 7 days),
churn for Ben (nothing booked, enrollment over, last lesson 45 days ago), milestones 5 and 10 and
a 4-week streak for Cleo (ten weekly lessons), and reactivation for Dan (churned, booked again).
"""

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from db.pinteach import class_sessions, enrollments, retention_settings, student_lifecycle_events, students
from demo import rows
from demo.rows import demo_service, demo_students, demo_teacher, insert


async def demo_session(conn: AsyncConnection, ids: dict[str, UUID], ends_at: datetime, status: str) -> UUID:
    return await insert(
        conn,
        class_sessions,
        **rows.session(
            ids["service"],
            ids["teacher"],
            ends_at,
            timedelta(hours=1),
            student_id=ids["student"],
            enrollment_id=ids.get("enrollment"),
            timezone="UTC",
            status=status,
            completed_at=ends_at if status == "completed" else None,
        ),
    )


async def demo_enrollment(conn: AsyncConnection, ids: dict[str, UUID], **kw: Any) -> UUID:
    now = datetime.now(UTC)
    valid = {"valid_from": now - timedelta(days=120), "valid_until": now + timedelta(days=60)}
    return await insert(
        conn,
        enrollments,
        **rows.enrollment(
            ids["service"], ids["student"], ids["teacher"], **{**valid, "sessions_total": 20, **kw}
        ),
    )


async def seed_demo(conn: AsyncConnection) -> dict[str, UUID]:
    now = datetime.now(UTC)
    teacher = await demo_teacher(conn)
    await conn.execute(
        retention_settings.insert().values(
            teacher_id=teacher, gap_days=7, churn_days=30, streak_weeks=4, milestones=[5, 10, 25]
        )
    )
    service = await demo_service(conn, teacher, "Guitar lessons")
    gap, churn, steady, back = await demo_students(conn, teacher, 4)
    ids = {"teacher": teacher, "service": service}

    ana = {**ids, "student": gap}
    ana["enrollment"] = await demo_enrollment(conn, ana)
    await demo_session(conn, ana, now - timedelta(days=10), "completed")

    ben = {**ids, "student": churn}
    ben["enrollment"] = await demo_enrollment(
        conn, ben, status="expired", valid_until=now - timedelta(days=40)
    )
    await demo_session(conn, ben, now - timedelta(days=45), "completed")

    cleo = {**ids, "student": steady}
    cleo["enrollment"] = await demo_enrollment(conn, cleo, sessions_completed=10)
    for week in range(10):
        await demo_session(conn, cleo, now - timedelta(days=2 + 7 * week), "completed")

    dan = {**ids, "student": back}
    await conn.execute(
        student_lifecycle_events.insert().values(
            teacher_id=teacher,
            student_id=back,
            event_type="churned",
            metadata={"days_without_session": 31},
            occurred_at=now - timedelta(days=20),
        )
    )
    await demo_session(conn, dan, now - timedelta(days=51), "completed")
    await demo_session(conn, dan, now + timedelta(days=3), "scheduled")
    await conn.execute(students.update().where(students.c.id == back).values(status="churned"))
    return {"teacher": teacher, "gap": gap, "churn": churn, "steady": steady, "back": back}

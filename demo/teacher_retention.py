"""Demo data for retention.teacher_policies: a teacher who keeps little.

The teacher's settings: contact log 30 days, read notifications 7 days, session notes 90 days,
soft-deleted students erased after 30 days. One run deletes the old contact log row and the
notification read ten days ago, clears the notes of the lesson four months ago, and files an
erasure request for the student deleted 40 days ago (gdpr.erase_due erases them on its next run).
"""

from datetime import UTC, datetime, timedelta
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from db.pinteach import contact_log, data_retention_settings, notifications, session_content, students
from demo.lifecycle import demo_session
from demo.rows import demo_service, demo_students, demo_teacher, insert


async def seed_demo(conn: AsyncConnection) -> dict[str, UUID]:
    now = datetime.now(UTC)
    teacher = await demo_teacher(conn)
    await conn.execute(
        data_retention_settings.insert().values(
            teacher_id=teacher,
            contact_log_days=30,
            read_notifications_days=7,
            session_notes_days=90,
            erase_deleted_students_after_days=30,
        )
    )
    service = await demo_service(conn, teacher, "Chess coaching")
    kept, gone = await demo_students(conn, teacher, 2)
    await conn.execute(
        students.update().where(students.c.id == gone).values(deleted_at=now - timedelta(days=40))
    )
    ids = {"teacher": teacher, "service": service, "student": kept}
    for days, summary in ((120, "Openings"), (10, "Endgames")):
        session = await demo_session(conn, ids, now - timedelta(days=days), "completed")
        await conn.execute(
            session_content.insert().values(session_id=session, summary=summary, teacher_notes="-")
        )
    for days in (45, 5):
        await insert(
            conn,
            contact_log,
            teacher_id=teacher,
            student_id=kept,
            channel="email",
            body="Hi",
            created_at=now - timedelta(days=days),
        )
    for read_days in (10, 1):
        await insert(
            conn,
            notifications,
            teacher_id=teacher,
            student_id=kept,
            recipient_type="teacher",
            type="scheduled_message.due",
            title="A scheduled message is due",
            read_at=now - timedelta(days=read_days),
            created_at=now - timedelta(days=20),
        )
    return {"teacher": teacher, "kept": kept, "deleted": gone}

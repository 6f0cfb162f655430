"""Demo data for the GDPR erasure: a student whose erasure request fell due yesterday."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from db.pinteach import (
    class_sessions,
    contact_log,
    credit_ledger,
    data_erasure_requests,
    enrollments,
    services,
    session_calendar_sync,
    session_content,
    students,
    teachers,
)
from demo import rows
from demo.rows import insert


async def seed_demo(conn: AsyncConnection) -> dict[str, Any]:
    """A teacher, a student with a lesson behind and one ahead (a reserved credit and a calendar
    event), notes and a contact log, and an erasure request due yesterday.

    One ``gdpr.erase_due`` run then anonymises the student, deletes the contact log, clears the
    lesson notes, cancels the lesson ahead (calendar sync pending, credit released) and completes
    the request with an audit row and a notification for the teacher.
    """
    now = datetime.now(UTC)
    n = uuid.uuid4().hex[:8]
    teacher = await insert(conn, teachers, **rows.teacher(f"demo-gdpr-{n}", name="Demo Teacher"))
    student = await insert(
        conn,
        students,
        **rows.student(
            teacher,
            f"demo-erase-{n}",
            name="Demo Erasable",
            phone="+47 400 00 000",
            status="churned",
            goals="Pass the B2 exam",
        ),
    )
    service = await insert(
        conn,
        services,
        **rows.service(teacher, n, name="Norwegian lessons", slug=f"norwegian-{n}", session_count=10),
    )
    enrollment = await insert(
        conn,
        enrollments,
        **rows.enrollment(
            service,
            student,
            teacher,
            now - timedelta(days=60),
            now + timedelta(days=120),
            sessions_total=10,
            sessions_scheduled=1,
            sessions_completed=1,
        ),
    )
    booked = {"enrollment_id": enrollment, "student_id": student}
    hour = timedelta(hours=1)
    past = await insert(
        conn,
        class_sessions,
        **rows.session(
            service,
            teacher,
            now - timedelta(days=7),
            hour,
            status="completed",
            completed_at=now - timedelta(days=7),
            **booked,
        ),
    )
    ahead = await insert(
        conn, class_sessions, **rows.session(service, teacher, now + timedelta(days=2) + hour, hour, **booked)
    )
    await conn.execute(
        session_content.insert().values(
            session_id=past, summary="Talked about her trip", teacher_notes="Practise"
        )
    )
    await conn.execute(session_calendar_sync.insert().values(session_id=ahead, sync_status="synced"))
    await conn.execute(
        credit_ledger.insert().values(
            enrollment_id=enrollment,
            session_id=ahead,
            student_id=student,
            teacher_id=teacher,
            action="RESERVE",
            amount=1,
            idempotency_key=f"RESERVE:{enrollment}:{ahead}:{student}",
        )
    )
    await conn.execute(
        contact_log.insert().values(teacher_id=teacher, student_id=student, channel="email", body="Welcome!")
    )
    request = await insert(
        conn,
        data_erasure_requests,
        teacher_id=teacher,
        student_id=student,
        requested_by="student",
        requested_at=now - timedelta(days=31),
        due_at=now - timedelta(days=1),
    )
    # a second student asked 28 days ago: due in two days, the dashboard's GDPR line shows it
    waiting = await insert(
        conn,
        students,
        **rows.student(teacher, f"demo-erase-soon-{n}", name="Demo Waiting", status="churned"),
    )
    await insert(
        conn,
        data_erasure_requests,
        teacher_id=teacher,
        student_id=waiting,
        requested_by="student",
        requested_at=now - timedelta(days=28),
        due_at=now + timedelta(days=2),
    )
    return {"teacher_id": teacher, "student_id": student, "request_id": request}

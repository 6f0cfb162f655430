"""Demo data for the GDPR erasure: a student whose erasure request fell due yesterday."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table
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


async def _insert(conn: AsyncConnection, table: Table, **values: Any) -> Any:
    return (
        await conn.execute(
            table.insert().values(**values).returning(table.c[table.primary_key.columns.keys()[0]])
        )
    ).scalar_one()


async def seed_demo(conn: AsyncConnection) -> dict[str, Any]:
    """A teacher, a student with a lesson behind and one ahead (a reserved credit and a calendar
    event), notes and a contact log, and an erasure request due yesterday.

    One ``gdpr.erase_due`` run then anonymises the student, deletes the contact log, clears the
    lesson notes, cancels the lesson ahead (calendar sync pending, credit released) and completes
    the request with an audit row and a notification for the teacher.
    """
    now = datetime.now(UTC)
    n = uuid.uuid4().hex[:8]
    teacher = await _insert(
        conn,
        teachers,
        email=f"demo-gdpr-{n}@pinteach.example",
        name="Demo Teacher",
        slug=f"demo-gdpr-{n}",
        timezone="Europe/Oslo",
    )
    student = await _insert(
        conn,
        students,
        teacher_id=teacher,
        email=f"demo-erase-{n}@example.com",
        name="Demo Erasable",
        phone="+47 400 00 000",
        timezone="Europe/Oslo",
        status="churned",
        goals="Pass the B2 exam",
    )
    service = await _insert(
        conn,
        services,
        teacher_id=teacher,
        name="Norwegian lessons",
        slug=f"norwegian-{n}",
        delivery_mode="live",
        group_type="individual",
        structure="package",
        pricing_model="credits",
        session_count=10,
        status="active",
    )
    enrollment = await _insert(
        conn,
        enrollments,
        service_id=service,
        student_id=student,
        teacher_id=teacher,
        status="active",
        sessions_total=10,
        sessions_scheduled=1,
        sessions_completed=1,
        valid_from=now - timedelta(days=60),
        valid_until=now + timedelta(days=120),
    )
    past = await _insert(
        conn,
        class_sessions,
        service_id=service,
        teacher_id=teacher,
        enrollment_id=enrollment,
        student_id=student,
        starts_at=now - timedelta(days=7, hours=1),
        ends_at=now - timedelta(days=7),
        timezone="Europe/Oslo",
        status="completed",
        completed_at=now - timedelta(days=7),
    )
    ahead = await _insert(
        conn,
        class_sessions,
        service_id=service,
        teacher_id=teacher,
        enrollment_id=enrollment,
        student_id=student,
        starts_at=now + timedelta(days=2),
        ends_at=now + timedelta(days=2, hours=1),
        timezone="Europe/Oslo",
        status="scheduled",
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
    request = await _insert(
        conn,
        data_erasure_requests,
        teacher_id=teacher,
        student_id=student,
        requested_by="student",
        requested_at=now - timedelta(days=31),
        due_at=now - timedelta(days=1),
    )
    return {"teacher_id": teacher, "student_id": student, "request_id": request}

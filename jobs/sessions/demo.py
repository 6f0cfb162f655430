"""Demo data for sessions.auto_complete: two teachers (one reviews sessions by hand), their students,
and sessions that ended at various times, so the first sweep has something to show."""

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from db.pinteach import class_sessions, enrollments, services, session_participants, students, teachers


async def _add(conn: AsyncConnection, table: Any, **values: Any) -> UUID:
    return (await conn.execute(insert(table).values(**values).returning(table.c.id))).scalar_one()


async def seed_demo(conn: AsyncConnection) -> dict[str, UUID]:
    now = datetime.now(UTC)
    anna = await _add(
        conn,
        teachers,
        email="anna@demo.pinteach.test",
        name="Anna Berg",
        slug="anna-berg",
        timezone="Europe/Oslo",
    )
    marco = await _add(
        conn,
        teachers,
        email="marco@demo.pinteach.test",
        name="Marco Rossi",
        slug="marco-rossi",
        timezone="Europe/Rome",
        completion_mode="MANUAL",
    )
    piano = await _add(
        conn,
        services,
        teacher_id=anna,
        name="Piano lessons",
        slug="piano",
        delivery_mode="live",
        group_type="individual",
        structure="package",
        pricing_model="credits",
        session_count=10,
        session_duration_minutes=45,
        status="active",
    )
    choir = await _add(
        conn,
        services,
        teacher_id=anna,
        name="Choir workshop",
        slug="choir",
        delivery_mode="live",
        group_type="group",
        structure="course",
        pricing_model="credits",
        max_participants=4,
        session_duration_minutes=90,
        status="active",
    )
    italian = await _add(
        conn,
        services,
        teacher_id=marco,
        name="Italian conversation",
        slug="italian",
        delivery_mode="live",
        group_type="individual",
        structure="package",
        pricing_model="credits",
        session_count=5,
        session_duration_minutes=60,
        status="active",
    )
    pupils = []
    for i, name in enumerate(("Ola Nordmann", "Kari Hansen", "Lars Eik", "Sofia Lund")):
        student = await _add(
            conn,
            students,
            teacher_id=anna,
            email=f"student{i}@demo.pinteach.test",
            name=name,
            timezone="Europe/Oslo",
            status="active",
        )
        piano_enrollment = await _add(
            conn,
            enrollments,
            service_id=piano,
            student_id=student,
            teacher_id=anna,
            status="active",
            sessions_total=10,
            sessions_scheduled=2,
            sessions_completed=3,
            valid_from=now - timedelta(days=40),
            valid_until=now + timedelta(days=50),
        )
        choir_enrollment = await _add(
            conn,
            enrollments,
            service_id=choir,
            student_id=student,
            teacher_id=anna,
            status="active",
            sessions_total=8,
            sessions_scheduled=1,
            valid_from=now - timedelta(days=10),
            valid_until=now + timedelta(days=80),
        )
        pupils.append((student, piano_enrollment, choir_enrollment))
        for ended_ago in (
            timedelta(minutes=40 + 10 * i),
            timedelta(minutes=-90 - 30 * i),
        ):  # one past, one ahead
            end = now - ended_ago
            await _add(
                conn,
                class_sessions,
                enrollment_id=piano_enrollment,
                service_id=piano,
                teacher_id=anna,
                student_id=student,
                starts_at=end - timedelta(minutes=45),
                ends_at=end,
                timezone="Europe/Oslo",
                status="scheduled",
                is_trial_session=(i == 0),
            )
    workshop = await _add(
        conn,
        class_sessions,
        service_id=choir,
        teacher_id=anna,
        starts_at=now - timedelta(hours=3),
        ends_at=now - timedelta(hours=1, minutes=30),
        timezone="Europe/Oslo",
        status="scheduled",
    )
    for student, _, choir_enrollment in pupils:
        await _add(
            conn,
            session_participants,
            session_id=workshop,
            student_id=student,
            enrollment_id=choir_enrollment,
        )
    learner = await _add(
        conn,
        students,
        teacher_id=marco,
        email="learner@demo.pinteach.test",
        name="Emma Schulz",
        timezone="Europe/Berlin",
        status="active",
    )
    italian_enrollment = await _add(
        conn,
        enrollments,
        service_id=italian,
        student_id=learner,
        teacher_id=marco,
        status="active",
        sessions_total=5,
        sessions_scheduled=1,
        valid_from=now - timedelta(days=5),
        valid_until=now + timedelta(days=25),
    )
    await _add(
        conn,
        class_sessions,
        enrollment_id=italian_enrollment,
        service_id=italian,
        teacher_id=marco,
        student_id=learner,
        starts_at=now - timedelta(hours=2),
        ends_at=now - timedelta(hours=1),
        timezone="Europe/Rome",
        status="scheduled",
    )
    return {"anna": anna, "marco": marco, "piano": piano, "choir": choir, "italian": italian}

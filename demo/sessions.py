"""Demo data for sessions.auto_complete: two teachers (one reviews sessions by hand), their students,
and sessions that ended at various times, so the first sweep has something to show."""

from datetime import UTC, datetime, timedelta
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from db.pinteach import class_sessions, enrollments, services, session_participants, students, teachers
from demo import rows
from demo.rows import insert as _add


async def seed_demo(conn: AsyncConnection) -> dict[str, UUID]:
    now = datetime.now(UTC)
    anna = await _add(
        conn,
        teachers,
        **rows.teacher("anna", email="anna@demo.pinteach.test", name="Anna Berg", slug="anna-berg"),
    )
    marco = await _add(
        conn,
        teachers,
        **rows.teacher(
            "marco",
            email="marco@demo.pinteach.test",
            name="Marco Rossi",
            slug="marco-rossi",
            timezone="Europe/Rome",
            completion_mode="MANUAL",
        ),
    )
    piano = await _add(
        conn,
        services,
        **rows.service(
            anna, "piano", name="Piano lessons", slug="piano", session_count=10, session_duration_minutes=45
        ),
    )
    choir = await _add(
        conn,
        services,
        **rows.service(
            anna,
            "choir",
            name="Choir workshop",
            slug="choir",
            group_type="group",
            structure="course",
            max_participants=4,
            session_duration_minutes=90,
        ),
    )
    italian = await _add(
        conn,
        services,
        **rows.service(marco, "italian", name="Italian conversation", slug="italian", session_count=5),
    )
    pupils = []
    for i, name in enumerate(("Ola Nordmann", "Kari Hansen", "Lars Eik", "Sofia Lund")):
        student = await _add(
            conn, students, **rows.student(anna, i, email=f"student{i}@demo.pinteach.test", name=name)
        )
        piano_enrollment = await _add(
            conn,
            enrollments,
            **rows.enrollment(
                piano,
                student,
                anna,
                now - timedelta(days=40),
                now + timedelta(days=50),
                sessions_total=10,
                sessions_scheduled=2,
                sessions_completed=3,
            ),
        )
        choir_enrollment = await _add(
            conn,
            enrollments,
            **rows.enrollment(
                choir,
                student,
                anna,
                now - timedelta(days=10),
                now + timedelta(days=80),
                sessions_total=8,
                sessions_scheduled=1,
            ),
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
                **rows.session(
                    piano,
                    anna,
                    end,
                    timedelta(minutes=45),
                    enrollment_id=piano_enrollment,
                    student_id=student,
                    is_trial_session=(i == 0),
                ),
            )
    workshop = await _add(
        conn,
        class_sessions,
        **rows.session(choir, anna, now - timedelta(hours=1, minutes=30), timedelta(minutes=90)),
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
        **rows.student(
            marco, "emma", email="learner@demo.pinteach.test", name="Emma Schulz", timezone="Europe/Berlin"
        ),
    )
    italian_enrollment = await _add(
        conn,
        enrollments,
        **rows.enrollment(
            italian,
            learner,
            marco,
            now - timedelta(days=5),
            now + timedelta(days=25),
            sessions_total=5,
            sessions_scheduled=1,
        ),
    )
    await _add(
        conn,
        class_sessions,
        **rows.session(
            italian,
            marco,
            now - timedelta(hours=1),
            timedelta(hours=1),
            enrollment_id=italian_enrollment,
            student_id=learner,
            timezone="Europe/Rome",
        ),
    )
    return {"anna": anna, "marco": marco, "piano": piano, "choir": choir, "italian": italian}

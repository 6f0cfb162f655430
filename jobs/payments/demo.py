"""Demo data for sessions.expire_holds: checkout holds that need no Stripe to act on.

``seed_demo(conn)`` adds one teacher with a credits service and four students who picked a slot:
two holds older than the default 30 minutes (one with its credit reserved in the ledger), one
that is still fresh, and one already paid. The next run expires the two old holds (a RELEASE for
the reserved one, both unpaid enrollments cancelled) and leaves the others alone. No hold has a
Checkout Session, so the demo runs without a Stripe key.
"""

import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from db.pinteach import (
    class_sessions,
    credit_ledger,
    enrollments,
    services,
    session_payment,
    students,
    teachers,
)


async def seed_demo(conn: AsyncConnection) -> dict[str, int]:
    """Insert the demo rows (in the caller's transaction); return what the next run should do."""
    now = datetime.now(UTC)
    tag = secrets.token_hex(3)  # lets the demo be seeded more than once
    teacher_id = (
        await conn.execute(
            teachers.insert()
            .values(
                email=f"demo-teacher-{tag}@example.com",
                name="Demo Teacher",
                slug=f"demo-teacher-{tag}",
                timezone="Europe/Oslo",
            )
            .returning(teachers.c.id)
        )
    ).scalar_one()
    service_id = (
        await conn.execute(
            services.insert()
            .values(
                teacher_id=teacher_id,
                name="Piano lessons (5-pack)",
                slug=f"piano-5-pack-{tag}",
                delivery_mode="live",
                group_type="individual",
                structure="package",
                pricing_model="credits",
                price_amount=22500,
                currency="EUR",
                session_count=5,
                session_duration_minutes=45,
                status="active",
            )
            .returning(services.c.id)
        )
    ).scalar_one()

    # (minutes since the slot was picked, enrollment status, credit already reserved)
    picks = [(45, "pending_payment", False), (90, "pending_payment", True), (5, "pending_payment", False)]
    picks.append((120, "active", False))
    for n, (minutes_old, status, reserved) in enumerate(picks, start=1):
        student_id = (
            await conn.execute(
                students.insert()
                .values(
                    teacher_id=teacher_id,
                    email=f"demo-student-{n}-{tag}@example.com",
                    name=f"Demo Student {n}",
                    timezone="Europe/Oslo",
                )
                .returning(students.c.id)
            )
        ).scalar_one()
        enrollment_id = (
            await conn.execute(
                enrollments.insert()
                .values(
                    service_id=service_id,
                    student_id=student_id,
                    teacher_id=teacher_id,
                    status=status,
                    sessions_total=5,
                    sessions_scheduled=1 if reserved else 0,
                    valid_from=now,
                    valid_until=now + timedelta(days=180),
                )
                .returning(enrollments.c.id)
            )
        ).scalar_one()
        starts_at = now + timedelta(days=n + 1)
        session_id = (
            await conn.execute(
                class_sessions.insert()
                .values(
                    enrollment_id=enrollment_id,
                    service_id=service_id,
                    teacher_id=teacher_id,
                    student_id=student_id,
                    starts_at=starts_at,
                    ends_at=starts_at + timedelta(minutes=45),
                    timezone="Europe/Oslo",
                    status="hold" if status == "pending_payment" else "scheduled",
                    created_at=now - timedelta(minutes=minutes_old),
                )
                .returning(class_sessions.c.id)
            )
        ).scalar_one()
        await conn.execute(session_payment.insert().values(session_id=session_id))
        if reserved:
            await conn.execute(
                credit_ledger.insert().values(
                    enrollment_id=enrollment_id,
                    session_id=session_id,
                    student_id=student_id,
                    teacher_id=teacher_id,
                    action="RESERVE",
                    amount=1,
                    actor="student",
                    idempotency_key=f"RESERVE:{enrollment_id}:{session_id}:{student_id}",
                )
            )
    return {"holds_expired": 2, "holds_confirmed": 0}

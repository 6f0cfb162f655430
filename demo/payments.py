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
from demo import rows
from demo.rows import insert


async def seed_demo(conn: AsyncConnection) -> dict[str, int]:
    """Insert the demo rows (in the caller's transaction); return what the next run should do."""
    now = datetime.now(UTC)
    tag = secrets.token_hex(3)  # lets the demo be seeded more than once
    teacher_id = await insert(conn, teachers, **rows.teacher(f"demo-{tag}", name="Demo Teacher"))
    service_id = await insert(
        conn,
        services,
        **rows.service(
            teacher_id,
            tag,
            name="Piano lessons (5-pack)",
            slug=f"piano-5-pack-{tag}",
            price_amount=22500,
            currency="EUR",
            session_count=5,
            session_duration_minutes=45,
        ),
    )

    # (minutes since the slot was picked, enrollment status, credit already reserved)
    picks = [(45, "pending_payment", False), (90, "pending_payment", True), (5, "pending_payment", False)]
    picks.append((120, "active", False))
    for n, (minutes_old, status, reserved) in enumerate(picks, start=1):
        student_id = await insert(
            conn, students, **rows.student(teacher_id, f"demo-{n}-{tag}", name=f"Demo Student {n}")
        )
        enrollment_id = await insert(
            conn,
            enrollments,
            **rows.enrollment(
                service_id,
                student_id,
                teacher_id,
                now,
                now + timedelta(days=180),
                status=status,
                sessions_total=5,
                sessions_scheduled=1 if reserved else 0,
            ),
        )
        starts_at = now + timedelta(days=n + 1)
        length = timedelta(minutes=45)
        session_id = await insert(
            conn,
            class_sessions,
            **rows.session(
                service_id,
                teacher_id,
                starts_at + length,
                length,
                enrollment_id=enrollment_id,
                student_id=student_id,
                status="hold" if status == "pending_payment" else "scheduled",
                created_at=now - timedelta(minutes=minutes_old),
            ),
        )
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

"""Demo data for scheduled messages: one whose job was lost, one about to come due, one cancelled."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncConnection

from db.pinteach import scheduled_messages
from demo.rows import demo_students, demo_teacher


@dataclass(frozen=True, slots=True)
class DemoMessages:
    lost: UUID  # due 5 minutes ago and never enqueued: messages.deliver_due delivers it
    cancelled: UUID  # due, but cancelled: never delivered
    # due 30 seconds from now: (message id, scheduled_for) for the caller to enqueue as the backend
    # does, messages.deliver with key=message id, deferred until scheduled_for (and store the job id)
    deferred: tuple[UUID, datetime]


async def seed_demo(conn: AsyncConnection, teacher_id: UUID | None = None) -> DemoMessages:
    teacher_id = teacher_id or await demo_teacher(conn)
    students = await demo_students(conn, teacher_id, 3)
    now = func.now()
    messages = [
        (
            students[0],
            "Thanks for today! Here is the exercise we talked about.",
            now - timedelta(minutes=5),
            "pending",
        ),
        (
            students[1],
            "Reminder: our lesson moves to 17:00 on Friday.",
            now - timedelta(minutes=2),
            "cancelled",
        ),
        (students[2], "Good luck at the recital tonight!", now + timedelta(seconds=30), "pending"),
    ]
    rows = (
        await conn.execute(
            scheduled_messages.insert()
            .values(
                [
                    {
                        "teacher_id": teacher_id,
                        "student_id": student_id,
                        "channel": "email",
                        "body": body,
                        "note": "demo",
                        "scheduled_for": when,
                        "status": status,
                    }
                    for student_id, body, when, status in messages
                ]
            )
            .returning(
                scheduled_messages.c.student_id, scheduled_messages.c.id, scheduled_messages.c.scheduled_for
            )
        )
    ).all()
    by_student = {r.student_id: r for r in rows}
    lost, cancelled, upcoming = (by_student[s] for s in students)
    return DemoMessages(lost=lost.id, cancelled=cancelled.id, deferred=(upcoming.id, upcoming.scheduled_for))

"""Delivering a scheduled message: the rule shared by messages.deliver and messages.deliver_due.

PinTeach does not send messages itself. A due message gets a ``contact_log`` row (what to send, to
whom, on which channel), one notification for the teacher to send it, and becomes ``sent`` pointing
at its contact log row: all in one statement, so in one transaction.

Exactly once: callers hold the message rows locked, and only ``pending`` messages whose time has
come are delivered, so whichever path gets there second finds the message ``sent`` (or
``cancelled``) and does nothing.
"""

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import CTE, ColumnElement, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from db.arrays import is_any
from db.pinteach import contact_log, notifications, scheduled_messages

m = scheduled_messages.c
DUE = (m.status == "pending", m.scheduled_for <= func.now())


async def deliver_messages(conn: AsyncConnection, message_ids: Sequence[UUID]) -> list[UUID]:
    """Deliver those of these (locked) messages that are pending and due; return their ids."""
    if not message_ids:
        return []
    sent, writes = deliver(is_any(m.id, message_ids))
    return list((await conn.execute(select(sent.c.id).add_cte(*writes))).scalars())


def deliver(which: ColumnElement[bool]) -> tuple[CTE, tuple[CTE, ...]]:
    """The delivery of the (locked) messages ``which`` picks that are pending and due: the ``sent``
    CTE (returning their ids), and the CTEs writing the contact log and notification, which the
    statement must carry (``add_cte``)."""
    sent = (
        update(scheduled_messages)
        .where(which, *DUE)
        .values(status="sent", contact_log_id=func.gen_random_uuid(), updated_at=func.now())
        .returning(m.id, m.teacher_id, m.student_id, m.channel, m.body, m.note, m.contact_log_id)
        .cte("sent")
    )
    logged = (
        insert(contact_log)
        .from_select(
            ["id", "teacher_id", "student_id", "channel", "body", "note"],
            select(
                sent.c.contact_log_id,
                sent.c.teacher_id,
                sent.c.student_id,
                sent.c.channel,
                sent.c.body,
                sent.c.note,
            ),
        )
        .cte("logged")
    )
    notified = (
        insert(notifications)
        .from_select(
            ["teacher_id", "recipient_type", "type", "title", "body", "payload"],
            select(
                sent.c.teacher_id,
                literal("teacher"),
                literal("scheduled_message.due"),
                literal("A scheduled message is due"),
                literal("Your scheduled message is ready to send; it is in the student's contact log."),
                func.jsonb_build_object(
                    "scheduled_message_id",
                    sent.c.id,
                    "contact_log_id",
                    sent.c.contact_log_id,
                    "student_id",
                    sent.c.student_id,
                    "channel",
                    sent.c.channel,
                ),
            ),
        )
        .cte("notified")
    )
    return sent, (logged, notified)

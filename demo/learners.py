"""Demo data for the learner erasure: a class of two learners, one whose erasure request is pending."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection

from db.pickatale import (
    account_center_sessions,
    class_memberships,
    classes,
    events,
    learner_erasure_requests,
    learner_memories,
    reading_sessions,
    teacher_portal_students,
    users,
    vocabulary_gaps,
)


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)  # Pickatale DATETIMEs hold naive UTC


async def _insert(conn: AsyncConnection, table: Table, **values: Any) -> int:
    return (await conn.execute(table.insert().values(**values))).inserted_primary_key[0]


async def seed_class(conn: AsyncConnection) -> dict[str, int]:
    """A teacher's class and a parent's account."""
    tag = uuid.uuid4().hex[:8]
    accounts = {}
    for role in ("teacher", "parent"):
        accounts[role] = await _insert(
            conn,
            users,
            uuid=str(uuid.uuid4()),
            name=f"Demo {role.title()}",
            email=f"demo-{role}-{tag}@example.com",
            password_hash="x",
            role=role,
            state="active",
        )
    class_id = await _insert(
        conn, classes, class_name="Demo 3B", year_level=3, teacher_id=accounts["teacher"], state="active"
    )
    return {"teacher_id": accounts["teacher"], "parent_id": accounts["parent"], "class_id": class_id}


async def seed_learner(
    conn: AsyncConnection, class_id: int, *, name: str, username: str, n_events: int = 30, n_readings: int = 3
) -> dict[str, Any]:
    """A learner in the class with the rows a child leaves behind: a login, readings and their
    events, memories and vocabulary gaps. Returns the learner's uuid and student id."""
    now = _utc_now()
    learner = str(uuid.uuid4())
    student = await _insert(
        conn,
        teacher_portal_students,
        uuid=learner,
        name=name,
        username=username,
        pin_hash="$2b$10$" + uuid.uuid4().hex,
        year_level=3,
        state="active",
    )
    await _insert(
        conn, class_memberships, student_id=student, class_id=class_id, enrolled_at=now - timedelta(days=90)
    )
    await _insert(
        conn,
        account_center_sessions,
        student_id=student,
        role="child",
        token_hash=uuid.uuid4().hex + uuid.uuid4().hex,
        expires_at=now + timedelta(days=7),
        user_agent="PickataleReader/5.2 (iPad)",
    )
    readings = [str(uuid.uuid4()) for _ in range(n_readings)]
    await conn.execute(
        reading_sessions.insert().values(
            [
                {
                    "session_id": r,
                    "learner_id": learner,
                    "book_id": f"book-{i}",
                    "state": "completed",
                    "pages_read": 12,
                }
                for i, r in enumerate(readings)
            ]
        )
    )
    if n_events:
        await conn.execute(
            events.insert().values(
                [
                    {
                        "event_id": str(uuid.uuid4()),
                        "learner_id": learner,
                        "session_id": readings[i % n_readings],
                        "event_type": "word_tapped" if i % 5 == 0 else "page_turned",
                        "book_id": f"book-{i % n_readings}",
                        "page_number": i % 24 + 1,
                        "word": "elephant" if i % 5 == 0 else None,
                        "payload": {"reader": username, "learner": learner} if i % 7 == 0 else None,
                        "client_ts": int(now.timestamp() * 1000) - i,
                        "created_at": now - timedelta(minutes=i),
                    }
                    for i in range(n_events)
                ]
            )
        )
    await _insert(
        conn,
        learner_memories,
        learner_id=learner,
        memory_type="profile",
        value={"name": name, "likes": "dinosaurs"},
    )
    await _insert(conn, vocabulary_gaps, learner_id=learner, word="elephant", tap_count=3, last_tapped=now)
    return {"learner_id": learner, "student_id": student, "name": name, "username": username}


async def seed_demo(conn: AsyncConnection) -> dict[str, Any]:
    """Two learners in a class; the erasure of one of them is due since yesterday.

    One ``learners.erase_due`` run then deletes her login, readings, events, memories and
    vocabulary gaps, archives her class membership, anonymises her student row, scrubs her name
    from the request's reason and completes the request. The other learner keeps everything.
    """
    now = _utc_now()
    tag = uuid.uuid4().hex[:6]
    ids = await seed_class(conn)
    erased = await seed_learner(conn, ids["class_id"], name="Ada Demo", username=f"ada-{tag}")
    await seed_learner(conn, ids["class_id"], name="Ben Demo", username=f"ben-{tag}")
    request = await _insert(
        conn,
        learner_erasure_requests,
        learner_id=erased["learner_id"],
        requested_by=ids["parent_id"],
        reason="Ada Demo is moving schools; please erase her reading data.",
        requested_at=now - timedelta(days=31),
        due_at=now - timedelta(days=1),
    )
    return {**ids, **erased, "request_id": request}

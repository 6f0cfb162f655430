"""PinTeach rows with sensible defaults, shared by the demo data and the tests' factories.

Each builder returns the column values of one row; any value can be overridden. ``tag`` makes the
unique columns (email, slug) unique: a counter in the tests, a random tag in the demo.
"""

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection

from db.pinteach import services, students, teachers


def new_tag() -> str:
    return uuid4().hex[:8]


def teacher(tag: object, **kw: Any) -> dict[str, Any]:
    return {
        "email": f"teacher-{tag}@example.com",
        "name": f"Teacher {tag}",
        "slug": f"teacher-{tag}",
        "timezone": "Europe/Oslo",
        **kw,
    }


def student(teacher_id: UUID, tag: object, **kw: Any) -> dict[str, Any]:
    return {
        "teacher_id": teacher_id,
        "email": f"student-{tag}@example.com",
        "name": f"Student {tag}",
        "timezone": "Europe/Oslo",
        "status": "active",
        **kw,
    }


def service(teacher_id: UUID, tag: object, **kw: Any) -> dict[str, Any]:
    """A live individual package of 60-minute sessions paid with credits."""
    return {
        "teacher_id": teacher_id,
        "name": f"Lessons {tag}",
        "slug": f"lessons-{tag}",
        "delivery_mode": "live",
        "group_type": "individual",
        "structure": "package",
        "pricing_model": "credits",
        "session_duration_minutes": 60,
        "status": "active",
        **kw,
    }


def enrollment(
    service_id: UUID, student_id: UUID, teacher_id: UUID, valid_from: Any, valid_until: Any, **kw: Any
) -> dict[str, Any]:
    return {
        "service_id": service_id,
        "student_id": student_id,
        "teacher_id": teacher_id,
        "status": "active",
        "valid_from": valid_from,
        "valid_until": valid_until,
        **kw,
    }


def session(
    service_id: UUID, teacher_id: UUID, ends_at: datetime | Any, length: timedelta, **kw: Any
) -> dict[str, Any]:
    """A scheduled session ending at ``ends_at`` (a time or an SQL expression) after ``length``."""
    return {
        "service_id": service_id,
        "teacher_id": teacher_id,
        "starts_at": ends_at - length,
        "ends_at": ends_at,
        "timezone": "Europe/Oslo",
        "status": "scheduled",
        **kw,
    }


async def insert(conn: AsyncConnection, table: Table, **values: Any) -> Any:
    """Insert one row and return its primary key."""
    result = await conn.execute(table.insert().values(**values).returning(*table.primary_key.columns))
    return result.scalar_one()


async def demo_teacher(conn: AsyncConnection) -> UUID:
    tag = new_tag()
    return await insert(conn, teachers, **teacher(f"demo-{tag}", name="Demo Teacher", timezone="UTC"))


async def demo_students(conn: AsyncConnection, teacher_id: UUID, n: int) -> list[UUID]:
    tag = new_tag()
    return [
        await insert(
            conn, students, **student(teacher_id, f"demo-{tag}-{i}", name=f"Demo Student {i}", timezone="UTC")
        )
        for i in range(1, n + 1)
    ]


async def demo_service(conn: AsyncConnection, teacher_id: UUID, name: str, **kw: Any) -> UUID:
    return await insert(conn, services, **service(teacher_id, f"demo-{new_tag()}", name=name, **kw))

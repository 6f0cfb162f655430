"""Rows the demo data sets share: a teacher, students and services, made up and unique per call."""

from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection

from db.pinteach import services, students, teachers


async def insert(conn: AsyncConnection, table: Table, **values: Any) -> UUID:
    return (await conn.execute(table.insert().values(**values).returning(table.c.id))).scalar_one()


async def demo_teacher(conn: AsyncConnection) -> UUID:
    tag = uuid4().hex[:8]
    return await insert(
        conn,
        teachers,
        email=f"demo-teacher-{tag}@example.com",
        name="Demo Teacher",
        slug=f"demo-{tag}",
        timezone="UTC",
    )


async def demo_students(conn: AsyncConnection, teacher_id: UUID, n: int) -> list[UUID]:
    tag = uuid4().hex[:8]
    return [
        await insert(
            conn,
            students,
            teacher_id=teacher_id,
            email=f"demo-student-{tag}-{i}@example.com",
            name=f"Demo Student {i}",
            timezone="UTC",
            status="active",
        )
        for i in range(1, n + 1)
    ]


async def demo_service(conn: AsyncConnection, teacher_id: UUID, name: str, **kw: Any) -> UUID:
    return await insert(
        conn,
        services,
        **{
            "teacher_id": teacher_id,
            "name": name,
            "slug": f"demo-{uuid4().hex[:8]}",
            "delivery_mode": "live",
            "group_type": "individual",
            "structure": "package",
            "pricing_model": "credits",
            "session_duration_minutes": 60,
            "status": "active",
            **kw,
        },
    )

"""Seed rows into the PinTeach test database with the defaults of ``demo.rows``; every value can be
overridden."""

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncEngine

from db import pinteach as t
from demo import rows

_n = itertools.count(1)


def now() -> datetime:
    return datetime.now(UTC)


def ago(**delta: float) -> datetime:
    return now() - timedelta(**delta)


def ahead(**delta: float) -> datetime:
    return now() + timedelta(**delta)


class PinTeach:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def insert(self, table: Table, **values: Any) -> UUID:
        async with self.engine.begin() as conn:
            result = await conn.execute(table.insert().values(**values).returning(*table.primary_key.columns))
            return result.scalar_one()

    async def rows(self, table: Table, *where: Any, order_by: Any = None) -> list[Any]:
        query = select(table).where(*where)
        if order_by is not None:
            query = query.order_by(order_by)
        async with self.engine.connect() as conn:
            return (await conn.execute(query)).all()

    async def row(self, table: Table, *where: Any) -> Any:
        rows = await self.rows(table, *where)
        assert len(rows) == 1, f"expected one {table.name} row, found {len(rows)}"
        return rows[0]

    async def count(self, table: Table, *where: Any) -> int:
        return len(await self.rows(table, *where))

    async def teacher(self, **kw: Any) -> UUID:
        return await self.insert(t.teachers, **rows.teacher(next(_n), **kw))

    async def student(self, teacher_id: UUID, **kw: Any) -> UUID:
        return await self.insert(t.students, **rows.student(teacher_id, next(_n), **kw))

    async def service(self, teacher_id: UUID, **kw: Any) -> UUID:
        return await self.insert(t.services, **rows.service(teacher_id, next(_n), **kw))

    async def enrollment(self, service_id: UUID, student_id: UUID, teacher_id: UUID, **kw: Any) -> UUID:
        row = rows.enrollment(
            service_id,
            student_id,
            teacher_id,
            kw.pop("valid_from", ago(days=30)),
            kw.pop("valid_until", ahead(days=60)),
            **{"sessions_total": 10, "sessions_scheduled": 1, **kw},
        )
        return await self.insert(t.enrollments, **row)

    async def session(self, service_id: UUID, teacher_id: UUID, **kw: Any) -> UUID:
        ends_at = kw.pop("ends_at", ago(hours=1))
        return await self.insert(
            t.class_sessions, **rows.session(service_id, teacher_id, ends_at, timedelta(hours=1), **kw)
        )

    async def participant(self, session_id: UUID, student_id: UUID, enrollment_id: UUID, **kw: Any) -> UUID:
        return await self.insert(
            t.session_participants,
            **{
                "session_id": session_id,
                "student_id": student_id,
                "enrollment_id": enrollment_id,
                **kw,
            },
        )

    async def individual(self, **session_kw: Any) -> dict[str, UUID]:
        """A teacher, a student, a credits service, an active enrollment and one booked session."""
        teacher_id = await self.teacher(**session_kw.pop("teacher", {}))
        student_id = await self.student(teacher_id)
        service_id = await self.service(teacher_id, **session_kw.pop("service", {}))
        enrollment_id = await self.enrollment(
            service_id, student_id, teacher_id, **session_kw.pop("enrollment", {})
        )
        session_id = await self.session(
            service_id, teacher_id, enrollment_id=enrollment_id, student_id=student_id, **session_kw
        )
        return {
            "teacher_id": teacher_id,
            "student_id": student_id,
            "service_id": service_id,
            "enrollment_id": enrollment_id,
            "session_id": session_id,
        }

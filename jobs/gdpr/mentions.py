"""Where an erased student is named outside their own rows: earlier audit metadata and the
erasure request's own reason. The values are scrubbed there (jobs.scrub); the audit rows, and the
request's status and dates, stay. Run before the student row is anonymised: it reads the values
from it.
"""

from uuid import UUID

from sqlalchemy import String, cast, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, array
from sqlalchemy.ext.asyncio import AsyncConnection

from db.pinteach import UUID_ARRAY, audit_logs, data_erasure_requests, students
from jobs.scrub import identifying_pattern, scrub_json, scrub_text

a = audit_logs.c


async def scrub_mentions(conn: AsyncConnection, request_id: UUID, student_id: UUID) -> dict[str, int]:
    student = (
        await conn.execute(
            select(
                students.c.teacher_id, students.c.email, students.c.name, students.c.phone, students.c.goals
            ).where(students.c.id == student_id)
        )
    ).one()
    values = [student.email, student.name, student.phone, student.goals]
    audit_rows = await scrub_audit_metadata(conn, student.teacher_id, student_id, values)
    # the request is about this student only: a first name alone is theirs too
    reason_pattern = identifying_pattern([student.email, student.phone, student.goals], names=[student.name])
    reason = (
        await conn.execute(
            select(data_erasure_requests.c.reason).where(data_erasure_requests.c.id == request_id)
        )
    ).scalar_one()
    scrubbed = scrub_text(reason, reason_pattern)
    if scrubbed != reason:
        await conn.execute(
            update(data_erasure_requests)
            .where(data_erasure_requests.c.id == request_id)
            .values(reason=scrubbed, updated_at=func.now())
        )
    return {"audit_rows_scrubbed": audit_rows}


async def scrub_audit_metadata(
    conn: AsyncConnection, teacher_id: UUID, student_id: UUID, values: list[str | None]
) -> int:
    """Scrub the values from the metadata of the teacher's audit rows and of rows about the student.

    Whole values only (no first names alone): these rows may be about other people of the teacher.
    audit_logs has no index on teacher_id or entity_id, so finding the rows is a scan of the table,
    once per erasure; the rewrite is one statement for all of them.
    """
    pattern = identifying_pattern(values)
    if pattern is None:
        return 0
    likes = [f"%{v.strip()}%" for v in values if v and v.strip()]
    found = (
        await conn.execute(
            select(a.id, a.metadata).where(
                or_(a.teacher_id == teacher_id, a.entity_id == student_id),
                cast(a.metadata, String).ilike(func.any(array(likes))),
            )
        )
    ).all()
    changed = [
        (row.id, scrubbed) for row in found if (scrubbed := scrub_json(row.metadata, pattern)) != row.metadata
    ]
    if not changed:
        return 0
    rewrites = select(
        func.unnest(literal([i for i, _ in changed], UUID_ARRAY)).label("id"),
        func.unnest(literal([doc for _, doc in changed], ARRAY(JSONB))).label("metadata"),
    ).subquery("rewrites")
    await conn.execute(update(audit_logs).where(a.id == rewrites.c.id).values(metadata=rewrites.c.metadata))
    return len(changed)

"""A GDPR Art. 17 erasure request, from `processing` to `completed`.

1. The request is marked ``processing`` in a transaction of its own (by the sweep or the queued
   job), so that a crash leaves a visible trail and the next sweep resumes it.
2. One transaction then locks the request (still ``processing``: a completed one is never touched
   again, a locked one belongs to a concurrent run), deletes the student's Drive folder when the
   teacher's drive integration allows, scrubs the student's values from earlier audit metadata and
   the request's reason (jobs.gdpr.mentions), erases the student's data (jobs.gdpr.student_data) and
   completes the request with its audit row and the teacher's notification. A Drive failure rolls
   it all back: the request stays ``processing`` for a retry and nothing is half-erased.

The Drive call is made while that transaction holds only the request's and the student's row
locks, before any other row is touched.
"""

from typing import Any
from uuid import UUID

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from db.pinteach import audit_logs, data_erasure_requests, notifications, students
from jobs.deps import Deps
from jobs.errors import JobError, Transient
from jobs.gdpr.drive import delete_folder, drive_connection
from jobs.gdpr.mentions import scrub_mentions
from jobs.gdpr.student_data import erase_student_data

SUMMARY_KEYS = ("erased", "failed")

log = structlog.get_logger()
r = data_erasure_requests.c


async def mark_processing(conn: AsyncConnection, request_ids: list[UUID]) -> None:
    await conn.execute(
        update(data_erasure_requests)
        .where(r.id.in_(request_ids), r.status == "pending")
        .values(status="processing", updated_at=func.now())
    )


async def erase_request(deps: Deps, request_id: UUID) -> bool:
    """Erase the student of a `processing` request and complete it.

    False when there was nothing to do: completed already, or another run holds it right now.
    """
    try:
        async with deps.pinteach.begin() as conn:
            request = (
                await conn.execute(
                    select(r.id, r.student_id, r.requested_by)
                    .where(r.id == request_id, r.status == "processing")
                    .with_for_update(skip_locked=True)
                )
            ).first()
            if request is None:
                return False
            student = (
                await conn.execute(
                    select(students.c.teacher_id, students.c.drive_folder_id)
                    .where(students.c.id == request.student_id)
                    # NO KEY UPDATE: ledger rows other jobs insert for this student (a foreign
                    # key's KEY SHARE) do not wait on the Drive call, nor deadlock with us.
                    .with_for_update(key_share=True)
                )
            ).one()
            folder_deleted = await erase_drive_folder(conn, deps, request, student)
            counts = await scrub_mentions(conn, request.id, request.student_id)
            counts |= await erase_student_data(conn, request.student_id)
            await complete(
                conn, request, student.teacher_id, {**counts, "drive_folder_deleted": folder_deleted}
            )
    except JobError as e:
        log.warning(
            "gdpr_erasure_failed",
            request_id=str(request_id),
            error=str(e),
            retryable=isinstance(e, Transient),
        )
        raise
    log.info(
        "gdpr_erasure_completed", request_id=str(request_id), drive_folder_deleted=folder_deleted, **counts
    )
    return True


async def erase_drive_folder(conn: AsyncConnection, deps: Deps, request: Any, student: Any) -> bool:
    if not student.drive_folder_id:
        return False
    connection = await drive_connection(conn, student.teacher_id)
    if connection is None:
        # Nothing the fleet may use to reach the folder; it lives on in the teacher's own Drive.
        log.warning("gdpr_drive_folder_not_reachable", request_id=str(request.id))
        return False
    deleted = await delete_folder(conn, deps.settings, connection, student.drive_folder_id)
    if not deleted:
        log.info("gdpr_drive_folder_already_gone", request_id=str(request.id))
    return deleted


async def complete(conn: AsyncConnection, request: Any, teacher_id: UUID, counts: dict[str, Any]) -> None:
    await conn.execute(
        update(data_erasure_requests)
        .where(r.id == request.id)
        .values(status="completed", processed_at=func.now(), updated_at=func.now())
    )
    await conn.execute(
        audit_logs.insert().values(
            teacher_id=teacher_id,
            actor_type="system",
            action="gdpr.erasure_completed",
            entity_type="data_erasure_request",
            entity_id=request.id,
            # counts only: the audit trail must not hold what was erased
            metadata={"requested_by": request.requested_by, **counts},
        )
    )
    await conn.execute(
        notifications.insert().values(
            teacher_id=teacher_id,
            recipient_type="teacher",
            type="gdpr.erasure_completed",
            title="A data erasure request has been completed",
            body=(
                "A student's personal data was erased as the GDPR requires. Sessions, enrollments "
                "and credit records stay for your accounts, without personal details."
            ),
            payload={"request_id": str(request.id)},
        )
    )

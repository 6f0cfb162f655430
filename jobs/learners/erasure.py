"""A learner erasure request, from ``pending`` through ``processing`` to ``completed``.

1. Claim: the request row is locked (FOR UPDATE SKIP LOCKED), marked ``processing`` and its
   ``reason`` scrubbed of the learner's name, username and uuid, in one commit: the trail is
   visible, and the free text is clean before the name that finds it is erased.
2. Hold: the row is locked again, in a READ COMMITTED transaction held on a connection of its own
   for the whole erasure, so a second run (the sweep, a queued job, another worker) skips it. If
   the worker dies, the server drops the connection and the lock with it; the request stays
   ``processing`` and the next run resumes it.
3. The steps (jobs.learners.learner_data) run on other connections, each committing on its own.
4. When every step is done the holder completes the request (``processed_at``) and commits; a run
   stopped by its time budget just lets go, and the next run goes on.

FOR UPDATE SKIP LOCKED needs MySQL 8.0.1+ or MariaDB 10.6+.
"""

import time
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from db.pickatale import learner_erasure_requests
from db.schema import missing_table
from jobs.deps import Deps
from jobs.learners.learner_data import Progress, Student, erase_learner, find_student
from jobs.scrub import identifying_pattern, scrub_text

SUMMARY_KEYS = ("erased", "learners_not_found", "unfinished", "busy", "rows_deleted")
NOT_FOUND_NOTE = (
    "Erasure note: no learner with this id was found in teacher_portal.students; "
    "any app data stored under the id was deleted."
)

log = structlog.get_logger()
r = learner_erasure_requests.c


@dataclass(frozen=True, slots=True)
class Request:
    id: int
    learner_id: str
    reason: str | None


async def unavailable(deps: Deps) -> bool:
    """True (and one clear log line) where the server has not run the migration yet."""
    async with deps.pickatale.connect() as conn:
        line = await missing_table(conn, learner_erasure_requests)
    if line is not None:
        log.warning("learner_erasure_unavailable", reason=line)
    return line is not None


def request_columns() -> Select[Any]:
    return select(r.id, r.learner_id, r.reason)


async def erase_next(
    deps: Deps, candidates: Select[Any], *, deadline: float
) -> tuple[int, dict[str, int]] | None:
    """Claim the first of ``candidates`` no other run holds and erase its learner: the request's id
    and the counts, or None when no candidate is left.

    ``candidates`` selects requests (id, learner_id, reason) that are pending or processing.
    """
    async with deps.pickatale.connect() as holder:
        await holder.execution_options(isolation_level="READ COMMITTED")
        request, student = await claim(holder, candidates)
        if request is None:
            return None
        async with holder.begin():
            held = (
                await holder.execute(
                    select(r.id)
                    .where(r.id == request.id, r.status == "processing")
                    .with_for_update(skip_locked=True)
                )
            ).first()
            if held is None:  # taken by another run between the claim and now
                return request.id, {"busy": 1}
            progress = await erase_learner(
                deps.pickatale,
                deps.settings,
                learner_id=request.learner_id,
                student=student,
                request_id=request.id,
                deadline=deadline,
            )
            if progress.finished:
                await complete(holder, request, student)
    return request.id, outcome(request, student, progress)


async def claim(holder: AsyncConnection, candidates: Select[Any]) -> tuple[Request | None, Student | None]:
    async with holder.begin():
        row = (await holder.execute(candidates.limit(1).with_for_update(skip_locked=True))).first()
        if row is None:
            return None, None
        request = Request(row.id, row.learner_id, row.reason)
        student = await find_student(holder, request.learner_id, request.id)
        values: dict[str, Any] = {"status": "processing", "updated_at": func.utc_timestamp()}
        if student is not None and not student.anonymised:
            pattern = identifying_pattern([request.learner_id, student.username], names=[student.name])
        else:
            pattern = identifying_pattern([request.learner_id])
        scrubbed = scrub_text(request.reason, pattern)
        if scrubbed != request.reason:
            values["reason"] = scrubbed
        await holder.execute(update(learner_erasure_requests).where(r.id == request.id).values(values))
    return request, student


async def complete(holder: AsyncConnection, request: Request, student: Student | None) -> None:
    values: dict[str, Any] = {
        "status": "completed",
        "processed_at": func.utc_timestamp(),
        "updated_at": func.utc_timestamp(),
    }
    if student is None:
        values["reason"] = func.concat_ws("\n\n", r.reason, NOT_FOUND_NOTE)
    await holder.execute(update(learner_erasure_requests).where(r.id == request.id).values(values))


def outcome(request: Request, student: Student | None, progress: Progress) -> dict[str, int]:
    fields = {
        "request_id": request.id,
        "memberships_archived": progress.memberships_archived,
        **{f"deleted_{name.replace('.', '_')}": n for name, n in progress.deleted.items()},
    }
    if not progress.finished:
        log.info("learner_erasure_paused", **fields)
        return {"unfinished": 1, "rows_deleted": progress.rows_deleted}
    if student is None:
        log.info("learner_erasure_learner_not_found", **fields)
    log.info("learner_erasure_completed", **fields)
    return {
        "erased": 1,
        "learners_not_found": int(student is None),
        "rows_deleted": progress.rows_deleted,
    }


def deadline_from(deps: Deps) -> float:
    return time.monotonic() + deps.settings.learner_erase_budget_s

"""What the erasure does to a learner's data, step by step, each step safe to repeat.

There is no transaction across Pickatale's databases: each step is idempotent and commits on its
own, so a crash at any point leaves the learner partly erased and the next run does the rest.
The order matters:

1. the child's login sessions go first, so the apps stop writing for them;
2. class memberships are archived (``archived_at``), so the class's seat count drops at once;
3. telemetry events and reading sessions, in short chunks sized by time under the run's budget
   (the purge's technique, jobs.retention.chunks), then learner memories and vocabulary gaps;
4. last, the student row is anonymised, replacing the uuid too: before that the uuid is the only
   link to the learner's rows, so every step before can still find them after a crash. The new
   uuid is derived from the request id, so a resumed run still finds the row.

Kept: the anonymised student row (foreign keys and class history stay valid) and the archived
memberships.
"""

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Table, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db.pickatale import (
    account_center_sessions,
    class_memberships,
    events,
    learner_memories,
    reading_sessions,
    teacher_portal_students,
    vocabulary_gaps,
)
from jobfleet.settings import Settings
from jobs.retention.chunk_sizer import ChunkSizer
from jobs.retention.chunks import walk_chunks

ERASED_NAME = "Erased learner"
# No hash matches "!", so no PIN logs in to the anonymised row.
NO_PIN = "!"
# A fixed namespace for the anonymised rows' uuids (uuid5 of the request id).
ERASED_UUID_NAMESPACE = uuid.UUID("1d5c2a43-4a7e-4f0c-9a3e-6c1b6f0e2a11")

# The learner's rows keyed by their uuid, deleted in chunks in this order.
BY_LEARNER_UUID: tuple[Table, ...] = (events, reading_sessions, learner_memories, vocabulary_gaps)

students = teacher_portal_students
s = students.c


def erased_uuid(request_id: int) -> str:
    return str(uuid.uuid5(ERASED_UUID_NAMESPACE, f"learner-erasure:{request_id}"))


def erased_username(student_id: int) -> str:
    return f"erased-{student_id}"  # usernames are unique, and so are student ids


@dataclass(frozen=True, slots=True)
class Student:
    id: int
    uuid: str
    name: str
    username: str

    @property
    def anonymised(self) -> bool:
        return self.name == ERASED_NAME and self.username == erased_username(self.id)


async def find_student(conn: AsyncConnection, learner_id: str, request_id: int) -> Student | None:
    """The learner's student row, under its own uuid or, once anonymised, the one this request gave it."""
    row = (
        await conn.execute(
            select(s.id, s.uuid, s.name, s.username)
            .where(s.uuid.in_([learner_id, erased_uuid(request_id)]))
            .limit(1)
        )
    ).first()
    return Student(*row) if row else None


@dataclass
class Progress:
    finished: bool = True
    deleted: dict[str, int] = field(default_factory=dict)
    memberships_archived: int = 0

    @property
    def rows_deleted(self) -> int:
        return sum(self.deleted.values())


async def erase_learner(
    engine: AsyncEngine,
    settings: Settings,
    *,
    learner_id: str,
    student: Student | None,
    request_id: int,
    deadline: float,
) -> Progress:
    """Run the steps in order; stop at the first chunk that ends past the deadline (``finished`` False).

    Steps already done find nothing to do and cost an index lookup each.
    """
    progress = Progress()

    async def chunked(table: Table, key: ColumnElement[bool]) -> bool:
        # at least one chunk per step reached, even past the deadline: every run moves on
        sizer = ChunkSizer(settings.learner_erase_chunk_size, settings.learner_erase_chunk_target_ms / 1000)
        walked = await walk_chunks(
            engine,
            table,
            table.delete(),
            where=key,
            window=(key,),
            sizer=sizer,
            pause_s=settings.learner_erase_pause_s,
            deadline=deadline,
        )
        progress.deleted[table.fullname] = walked.changed
        return walked.finished

    if student is not None:
        if not await chunked(account_center_sessions, account_center_sessions.c.student_id == student.id):
            progress.finished = False
            return progress
        progress.memberships_archived = await archive_memberships(engine, student.id)
    for table in BY_LEARNER_UUID:
        if not await chunked(table, table.c.learner_id == learner_id):
            progress.finished = False
            return progress
    if student is not None:
        await anonymise_student(engine, student.id, request_id)
    return progress


async def archive_memberships(engine: AsyncEngine, student_id: int) -> int:
    """Archive the learner's active memberships: the class cap counts ``archived_at IS NULL``."""
    m = class_memberships.c
    async with engine.begin() as conn:
        result = await conn.execute(
            update(class_memberships)
            .where(m.student_id == student_id, m.archived_at.is_(None))
            .values(archived_at=func.utc_timestamp())
        )
        return result.rowcount


async def anonymise_student(engine: AsyncEngine, student_id: int, request_id: int) -> None:
    values: dict[str, Any] = {
        "uuid": erased_uuid(request_id),
        "name": ERASED_NAME,
        "username": erased_username(student_id),
        "pin_hash": NO_PIN,
        "state": "archived",
        "locked": True,
        "updated_at": func.utc_timestamp(),
    }
    async with engine.begin() as conn:
        await conn.execute(update(students).where(s.id == student_id).values(values))

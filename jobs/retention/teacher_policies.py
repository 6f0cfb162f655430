"""retention.teacher_policies: apply each teacher's ``data_retention_settings`` (NULL: keep).

- ``contact_log_days``: contact log rows older than that are deleted.
- ``read_notifications_days``: notifications read longer ago than that are deleted.
- ``session_notes_days``: ``session_content.summary`` and ``teacher_notes`` are cleared for sessions
  that ended longer ago than that.
- ``erase_deleted_students_after_days``: a student soft-deleted longer ago than that gets a
  ``data_erasure_requests`` row (requested_by teacher, due at once, the reason naming the policy),
  unless they have one already (of any status: a rejected request stands); gdpr.erase_due then
  erases them with all its guarantees (Drive, anonymisation, audit).

Chunked like telemetry.purge: each policy first finds its expired rows' keys (one statement), then
changes them ``sweep_batch_size`` at a time, each chunk a short transaction whose statement checks
again that the row is still expired; a time budget (``JOBFLEET_RETENTION_BUDGET_S``) is checked
after each chunk and what is left waits for the next run. Writes grow with the expired rows. The
schema has no index on contact_log's or notifications' teacher or time columns (the fleet does
not add any), so finding their expired rows is one sequential scan of each table per run.

Twice at once: deleting and clearing are idempotent; an erasure request is inserted after the
student's row lock is held (``jobs.student_locks``) by a statement that sees any request a
concurrent run committed first.
"""

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from uuid import UUID

import structlog
from sqlalchemy import ColumnElement, Executable, String, and_, delete, exists, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db.arrays import is_any
from db.pinteach import (
    class_sessions,
    contact_log,
    data_erasure_requests,
    data_retention_settings,
    enum,
    notifications,
    session_content,
    students,
)
from jobfleet.payloads import Sweep
from jobs.deps import Deps
from jobs.optional_tables import migration_missing
from jobs.student_locks import lock_students

log = structlog.get_logger()
SUMMARY_KEYS = (
    "contact_log_deleted",
    "notifications_deleted",
    "session_notes_cleared",
    "erasure_requested",
    "chunks",
    "complete",
)
POLICY_REASON = "data retention policy of the teacher: erase_deleted_students_after_days = "

MAX_CHUNKS_PER_RUN = 2000
Change = Callable[[AsyncConnection, list[UUID]], Awaitable[int]]
d, r = data_retention_settings.c, data_erasure_requests.c
c, n, sc, cs, s = contact_log.c, notifications.c, session_content.c, class_sessions.c, students.c


def older_than(column: ColumnElement, days: ColumnElement) -> ColumnElement[bool]:
    return column < func.now() - func.make_interval(0, 0, 0, days)


def _setting(
    teacher_id: ColumnElement, days: ColumnElement, *aged: ColumnElement[bool]
) -> ColumnElement[bool]:
    """The teacher has this setting and the row is past it."""
    return exists().where(d.teacher_id == teacher_id, days.is_not(None), *aged)


CONTACT_LOG_EXPIRED = _setting(c.teacher_id, d.contact_log_days, older_than(c.created_at, d.contact_log_days))
NOTIFICATION_EXPIRED = _setting(
    n.teacher_id,
    d.read_notifications_days,
    n.read_at.is_not(None),
    older_than(n.read_at, d.read_notifications_days),
)
NOTES_EXPIRED = and_(
    sc.summary.is_not(None) | sc.teacher_notes.is_not(None),
    exists().where(
        cs.id == sc.session_id,
        d.teacher_id == cs.teacher_id,
        d.session_notes_days.is_not(None),
        older_than(cs.ends_at, d.session_notes_days),
    ),
)
ERASURE_DUE = and_(
    s.deleted_at.is_not(None),
    _setting(
        s.teacher_id,
        d.erase_deleted_students_after_days,
        older_than(s.deleted_at, d.erase_deleted_students_after_days),
    ),
    ~exists().where(r.student_id == s.id),
)


@dataclass(frozen=True, slots=True)
class Policy:
    counted: str  # the summary key
    key: ColumnElement  # the primary key of the rows it changes
    expired: ColumnElement[bool]
    change: Change  # one chunk of keys; checks again that they are still expired


def statement(write: Callable[[list[UUID]], Executable]) -> Change:
    async def change(conn: AsyncConnection, ids: list[UUID]) -> int:
        return (await conn.execute(write(ids))).rowcount

    return change


async def request_erasure(conn: AsyncConnection, ids: list[UUID]) -> int:
    locked = await lock_students(conn, ids)
    # after the lock: this statement sees a request that a concurrent run committed while we waited
    days = select(d.erase_deleted_students_after_days).where(d.teacher_id == s.teacher_id).scalar_subquery()
    inserted = await conn.execute(
        insert(data_erasure_requests)
        .from_select(
            ["teacher_id", "student_id", "requested_by", "reason", "due_at"],
            select(
                s.teacher_id,
                s.id,
                literal("teacher", enum("erasure_requested_by")),
                func.concat(literal(POLICY_REASON, String), days, literal(" days", String)),
                func.now(),
            ).where(is_any(s.id, locked), ERASURE_DUE),
        )
        .returning(r.id)
    )
    return len(inserted.all())


POLICIES = (
    Policy(
        "contact_log_deleted",
        c.id,
        CONTACT_LOG_EXPIRED,
        statement(lambda ids: delete(contact_log).where(is_any(c.id, ids), CONTACT_LOG_EXPIRED)),
    ),
    Policy(
        "notifications_deleted",
        n.id,
        NOTIFICATION_EXPIRED,
        statement(lambda ids: delete(notifications).where(is_any(n.id, ids), NOTIFICATION_EXPIRED)),
    ),
    Policy(
        "session_notes_cleared",
        sc.session_id,
        NOTES_EXPIRED,
        statement(
            lambda ids: (
                update(session_content)
                .where(is_any(sc.session_id, ids), NOTES_EXPIRED)
                .values(summary=None, teacher_notes=None)
            )
        ),
    ),
    Policy("erasure_requested", s.id, ERASURE_DUE, request_erasure),
)


async def run(deps: Deps, payload: Sweep) -> dict[str, int]:
    totals = dict.fromkeys(SUMMARY_KEYS, 0)
    engine = deps.pinteach
    if await migration_missing(engine, "retention.teacher_policies", data_retention_settings):
        return {**totals, "migration_missing": 1}
    deadline = time.monotonic() + deps.settings.retention_budget_s
    complete = True
    for policy in POLICIES:
        changed, chunks, finished = await apply(
            engine, policy, size=deps.settings.sweep_batch_size, deadline=deadline
        )
        totals[policy.counted] += changed
        totals["chunks"] += chunks
        complete = complete and finished
    totals["complete"] = int(complete)
    log.info("teacher_retention_applied", **totals)
    return totals


async def apply(engine: AsyncEngine, policy: Policy, *, size: int, deadline: float) -> tuple[int, int, bool]:
    """(rows changed, chunks, whether every expired row was reached)."""
    cap = size * MAX_CHUNKS_PER_RUN  # a first run over years of data holds at most this many keys
    async with engine.connect() as conn:
        keys = list(
            (
                await conn.execute(
                    select(policy.key).where(policy.expired).order_by(policy.key).limit(cap + 1)
                )
            ).scalars()
        )
    truncated = len(keys) > cap
    keys = keys[:cap]
    changed = chunks = 0
    for start in range(0, len(keys), size):
        # each policy gets at least one chunk per run, whatever the budget says, so every run moves on
        if chunks and time.monotonic() >= deadline:
            return changed, chunks, False
        async with engine.begin() as conn:
            changed += await policy.change(conn, keys[start : start + size])
        chunks += 1
    return changed, chunks, not truncated

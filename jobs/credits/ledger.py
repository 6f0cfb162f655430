"""The credit ledger in one place: idempotency keys, the idempotent insert, RELEASE, counter moves.

An idempotency key is ``ACTION:enrollment:session:student`` (the session empty for GRANT and
EXPIRE, which are one per enrollment). The unique index on it is the final guard of exactly-once:
every insert here is ON CONFLICT DO NOTHING and returns only the rows it wrote, and counters move
only for those, so a second run (or one racing this) cannot move a counter twice.
"""

from collections import Counter
from collections.abc import Iterable
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    Uuid,
    cast,
    func,
    literal,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import Insert, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from db.arrays import unnest
from db.pinteach import credit_ledger, enrollments, enum

ledger = credit_ledger.c
e = enrollments.c
COLUMNS = ("enrollment_id", "session_id", "student_id", "teacher_id", "action", "amount", "actor")


def key(action: str, enrollment_id: UUID | None, session_id: UUID | None, student_id: UUID | None) -> str:
    return f"{action}:{enrollment_id}:{session_id or ''}:{student_id}"


def expire_key(enrollment_id: UUID, student_id: UUID) -> str:
    return key("EXPIRE", enrollment_id, None, student_id)


def key_sql(action: str, enrollment_id: Any, session_id: Any, student_id: Any) -> ColumnElement[str]:
    """``key`` computed by the database from columns (``session_id`` None: no session segment)."""
    session = literal("", String) if session_id is None else cast(session_id, String)
    return func.concat(f"{action}:", cast(enrollment_id, String), ":", session, ":", cast(student_id, String))


EXPIRE_KEY = key_sql("EXPIRE", e.id, None, e.student_id)


def insert_new(rows: Select, columns: Iterable[str] = (*COLUMNS, "idempotency_key")) -> Insert:
    """INSERT ... SELECT of ledger rows whose keys are new: add ``.returning()`` for those written."""
    return (
        insert(credit_ledger)
        .from_select(list(columns), rows)
        .on_conflict_do_nothing(
            index_elements=[ledger.idempotency_key], index_where=ledger.idempotency_key.is_not(None)
        )
    )


def entries(
    action: str, amount: Any, actor: str, *, enrollment_id, session_id, student_id, teacher_id
) -> tuple:
    """The select list of one ledger row per input row, in ``COLUMNS`` order plus its key."""
    return (
        enrollment_id,
        literal(None, Uuid) if session_id is None else session_id,
        student_id,
        teacher_id,
        literal(action, enum("credit_action")),
        amount,
        literal(actor, enum("credit_actor")),
        key_sql(action, enrollment_id, session_id, student_id),
    )


def row(action: str, amount: int, actor: str, *, enrollment_id, session_id, student_id, teacher_id) -> dict:
    """One ledger row as a dict for ``write``, with its key."""
    return {
        "enrollment_id": enrollment_id,
        "session_id": session_id,
        "student_id": student_id,
        "teacher_id": teacher_id,
        "action": action,
        "amount": amount,
        "actor": actor,
        "idempotency_key": key(action, enrollment_id, session_id, student_id),
    }


def writes(rows: list[dict]) -> Insert:
    """Insert these rows (from ``row``) where their keys are new, returning those written (action,
    enrollment_id, student_id, teacher_id): a statement to run, or to fold into one as a CTE."""
    return (
        insert(credit_ledger)
        .values(rows)
        .on_conflict_do_nothing(
            index_elements=[ledger.idempotency_key], index_where=ledger.idempotency_key.is_not(None)
        )
        .returning(ledger.action, ledger.enrollment_id, ledger.student_id, ledger.teacher_id)
    )


async def release(conn: AsyncConnection, reserved: Iterable[tuple[UUID, UUID]], *where) -> list[UUID]:
    """A RELEASE for each RESERVE of these (enrollment, session) pairs that has none, matching
    ``where`` (conditions on ``RESERVE``); returns the enrollment of each row written."""
    pairs = sorted(set(reserved))
    if not pairs:
        return []
    return list((await conn.execute(releases(pairs, *where))).scalars())


def releases(pairs: list[tuple[UUID, UUID]], *where) -> Insert:
    """``release`` as a statement (returning the enrollment of each row written), to run as a CTE."""
    r = RESERVE.c
    earlier = credit_ledger.alias("earlier")
    unreleased = (
        select(
            *entries(
                "RELEASE",
                literal(1),
                "system",
                enrollment_id=r.enrollment_id,
                session_id=r.session_id,
                student_id=r.student_id,
                teacher_id=r.teacher_id,
            )
        )
        .distinct()
        # the enrollment index finds the rows; the pairs are a handful of enrollments
        .where(
            r.enrollment_id.in_(sorted({enrollment for enrollment, _ in pairs})),
            tuple_(r.enrollment_id, r.session_id).in_(pairs),
            r.action == "RESERVE",
            ~select(earlier.c.id)
            .where(
                earlier.c.enrollment_id == r.enrollment_id,
                earlier.c.session_id == r.session_id,
                earlier.c.student_id == r.student_id,
                earlier.c.action == "RELEASE",
            )
            .exists(),
            *where,
        )
    )
    return insert_new(unreleased).returning(ledger.enrollment_id)


RESERVE = credit_ledger.alias("reserve")


def scheduled_plus(n: Any) -> ColumnElement[int]:
    """``sessions_scheduled`` moved by ``n``, never below zero."""
    return func.greatest(func.coalesce(e.sessions_scheduled, 0) + n, 0)


def completed_plus(n: Any) -> ColumnElement[int]:
    return func.coalesce(e.sessions_completed, 0) + n


async def move_scheduled(conn: AsyncConnection, deltas: Counter) -> None:
    """Add each enrollment's delta to ``sessions_scheduled`` (never below zero), in one statement."""
    deltas = Counter({k: n for k, n in deltas.items() if n})
    if not deltas:
        return
    moved = unnest("moved", enrollment_id=(deltas.keys(), Uuid), n=(deltas.values(), Integer))
    await conn.execute(
        update(enrollments)
        .where(e.id == moved.c.enrollment_id)
        .values(sessions_scheduled=scheduled_plus(moved.c.n), updated_at=func.now())
    )

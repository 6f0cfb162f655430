"""reviews.request_due: ask a student for a review once they have completed enough sessions.

For teachers whose ``review_settings.auto_request`` is on: a student who has completed
``after_completed_sessions`` sessions (individual ones, and group sessions they attended) gets one
``review_requests`` row through the teacher's ``channel``, expiring after ``expires_after_days``,
and never a second while one is pending, completed or dismissed (an expired one may be followed by
a new one). The token is ``secrets.token_urlsafe(32)``: 256 random bits, URL-safe, 43 characters;
it goes into the row and nowhere else (no log line, no notification). An ``in_app`` request also
notifies the student (the notification names the request, not the token); ``email`` and ``link``
requests are delivered by the backend, which owns the mail and the link pages.

Triggers: the sweep (every teacher with auto_request), and sessions.auto_complete, which asks for
a run for the teachers whose students it just completed, after its commits (``jobs.followups``,
``follow_up_for``).

Exactly once: each batch locks its students (``jobs.student_locks``) before the statement that
inserts only where no pending, completed or dismissed request exists; that statement runs after
the lock, so it sees the request of any run that held the student before.
"""

import secrets
from uuid import UUID

import structlog
from sqlalchemy import ColumnElement, Integer, String, Uuid, cast, exists, func, select
from sqlalchemy.dialects.postgresql import aggregate_order_by, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db.arrays import is_any, unnest
from db.pinteach import UUID_ARRAY, enum, notifications, review_requests, review_settings, students
from db.schema import missing_table
from jobfleet.payloads import MAX_TEACHERS_PER_RUN, ReviewRun
from jobs.deps import Deps
from jobs.followups import FollowUp
from jobs.lifecycle.state import sessions_of
from jobs.optional_tables import migration_missing
from jobs.student_locks import lock_students
from jobs.sweep import sweep

log = structlog.get_logger()
SUMMARY_KEYS = ("requested", "notified")
TOKEN_BYTES = 32
BLOCKING = ("pending", "completed", "dismissed")

r, rs, s = review_requests.c, review_settings.c, students.c


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def _no_blocking_request(student_id: ColumnElement) -> ColumnElement[bool]:
    return ~exists().where(r.student_id == student_id, r.status.in_(BLOCKING))


async def run(deps: Deps, payload: ReviewRun) -> dict[str, int]:
    if await migration_missing(deps.pinteach, "reviews.request_due", review_settings, review_requests):
        return {**dict.fromkeys(SUMMARY_KEYS, 0), "migration_missing": 1}
    after: list[UUID | None] = [None]

    async def batch() -> tuple[int, dict[str, int]]:
        async with deps.pinteach.begin() as conn:
            ids = await candidates(conn, payload.teacher_ids, after[0], deps.settings.sweep_batch_size)
            if not ids:
                return 0, {}
            after[0] = ids[-1]
            return len(ids), await request_batch(conn, ids)

    return await sweep(batch, budget_s=deps.settings.sweep_budget_s, keys=SUMMARY_KEYS)


async def candidates(
    conn: AsyncConnection, teacher_ids: tuple[UUID, ...] | None, after: UUID | None, limit: int
) -> list[UUID]:
    """The next students (by id) of auto-requesting teachers without a blocking request."""
    query = (
        select(s.id)
        .select_from(students.join(review_settings, rs.teacher_id == s.teacher_id))
        .where(rs.auto_request, s.deleted_at.is_(None), _no_blocking_request(s.id))
        .order_by(s.id)
        .limit(limit)
    )
    if teacher_ids is not None:
        query = query.where(is_any(s.teacher_id, teacher_ids))
    if after is not None:
        query = query.where(s.id > after)
    return list((await conn.execute(query)).scalars())


async def request_batch(conn: AsyncConnection, ids: list[UUID]) -> dict[str, int]:
    locked = await lock_students(conn, ids)
    attended = sessions_of(locked)
    done = (
        select(
            attended.c.student_id,
            func.count().label("completed"),
            # the latest completed session: the one the request is about
            func.array_agg(
                aggregate_order_by(attended.c.session_id, attended.c.ends_at.desc()), type_=UUID_ARRAY
            )[1].label("session_id"),
        )
        .where(attended.c.status == "completed")
        .group_by(attended.c.student_id)
        .subquery("done")
    )
    due = (
        await conn.execute(
            select(
                s.id,
                s.teacher_id,
                done.c.session_id,
                cast(rs.channel, String).label("channel"),
                rs.expires_after_days,
            )
            .select_from(
                students.join(review_settings, rs.teacher_id == s.teacher_id).join(
                    done, done.c.student_id == s.id
                )
            )
            .where(
                is_any(s.id, locked),
                rs.auto_request,
                done.c.completed >= rs.after_completed_sessions,
                _no_blocking_request(s.id),
            )
        )
    ).all()
    if not due:
        return {}
    return await _insert_requests(conn, due)


async def _insert_requests(conn: AsyncConnection, due: list) -> dict[str, int]:
    rows = unnest(
        "due",
        student_id=([d.id for d in due], Uuid),
        teacher_id=([d.teacher_id for d in due], Uuid),
        session_id=([d.session_id for d in due], Uuid),
        channel=([d.channel for d in due], String),
        token=([new_token() for _ in due], String),
        days=([d.expires_after_days for d in due], Integer),
    )
    created = (
        await conn.execute(
            insert(review_requests)
            .from_select(
                ["teacher_id", "student_id", "session_id", "channel", "token", "expires_at"],
                select(
                    rows.c.teacher_id,
                    rows.c.student_id,
                    rows.c.session_id,
                    cast(rows.c.channel, enum("review_request_channel")),
                    rows.c.token,
                    func.now() + func.make_interval(0, 0, 0, rows.c.days),
                ),
            )
            .returning(
                r.id, r.teacher_id, r.student_id, cast(r.channel, String).label("channel"), r.expires_at
            )
        )
    ).all()
    in_app = [c for c in created if c.channel == "in_app"]
    if in_app:
        await conn.execute(
            notifications.insert().values(
                [
                    {
                        "teacher_id": c.teacher_id,
                        "student_id": c.student_id,
                        "recipient_type": "student",
                        "type": "review.requested",
                        "title": "How are your lessons going?",
                        "body": "Your teacher would value a short review of your sessions.",
                        "payload": {"review_request_id": str(c.id), "expires_at": c.expires_at.isoformat()},
                    }
                    for c in in_app
                ]
            )
        )
    log.info("review_requests_created", requested=len(created), in_app=len(in_app))
    return {"requested": len(created), "notified": len(in_app)}


async def follow_up_for(engine: AsyncEngine, teacher_ids: set[UUID]) -> list[FollowUp]:
    """The run that auto-completion asks for: those of these teachers who ask automatically (all of
    them past the payload's cap: the sweep's work, sooner). Nothing without migration 0080."""
    if not teacher_ids:
        return []
    async with engine.connect() as conn:
        if await missing_table(conn, review_settings):
            return []
        asking = sorted(
            (
                await conn.execute(
                    select(rs.teacher_id).where(is_any(rs.teacher_id, teacher_ids), rs.auto_request)
                )
            ).scalars()
        )
    if not asking:
        return []
    payload = {"teacher_ids": [str(i) for i in asking]} if len(asking) <= MAX_TEACHERS_PER_RUN else {}
    return [FollowUp("reviews.request_due", payload)]

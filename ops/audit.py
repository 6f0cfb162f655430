"""``jobfleet audit``: check the fleet's invariants on a live database, read-only.

Each check is one aggregate query (a hash join or an index range, never a query per row) run in a
read-only transaction, and reports every violation with the ids involved.
"""

import argparse
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import Table, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db.pickatale import events, learner_erasure_requests
from db.pinteach import review_requests
from db.schema import missing_table
from jobfleet.settings import Settings
from jobs.gdpr.personal_data import (
    DELETED_WITH_STUDENT,
    ERASED_NAME,
    SESSION_CONTENT_CLEARED,
    STUDENT_COLUMNS_CLEARED,
    erased_email,
)
from jobs.learners.learner_data import BY_LEARNER_UUID
from jobs.learners.learner_data import ERASED_NAME as LEARNER_ERASED_NAME

EXIT_VIOLATIONS, EXIT_CRASHED = 1, 2

# Sessions that hold a booked credit: not yet consumed, not released.
BOOKED = "('scheduled', 'in_progress', 'pending_confirmation', 'pending_review')"


@dataclass(frozen=True, slots=True)
class Violation:
    check: str
    message: str
    ids: dict[str, Any]

    def __str__(self) -> str:
        ids = " ".join(f"{k}={v}" for k, v in self.ids.items())
        return f"{self.check}: {self.message} ({ids})"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    sql: str
    message: str
    # an optional table (a migration the database may not have run): the check is skipped without it
    needs: Table | None = None

    def violations(self, rows: list[Any]) -> Iterator[Violation]:
        for row in rows:
            values = {k: _plain(v) for k, v in row._asdict().items()}
            yield Violation(self.name, self.message.format(**values), values)


def _has_rows(table: str, column: str, value: str) -> str:
    return f"EXISTS (SELECT 1 FROM {table} x WHERE x.{column} = {value})"


def erased_email_sql(student_id: str) -> str:
    prefix, suffix = erased_email(UUID(int=0)).split(str(UUID(int=0)))
    return f"'{prefix}' || {student_id} || '{suffix}'"


def _plain(value: Any) -> Any:
    # PostgreSQL's sum() of integers is numeric: counts come back as Decimal, which JSON cannot hold
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


PINTEACH_CHECKS = (
    Check(
        "enrollment_counters",
        f"""
        WITH consumed AS (
            SELECT enrollment_id, sum(amount) AS n FROM credit_ledger WHERE action = 'CONSUME' GROUP BY 1),
        forfeited AS (
            SELECT enrollment_id, sum(amount) AS n FROM credit_ledger WHERE action = 'EXPIRE' GROUP BY 1),
        booked AS (
            SELECT enrollment_id, count(*) AS n FROM class_sessions
            WHERE enrollment_id IS NOT NULL AND student_id IS NOT NULL AND status IN {BOOKED} GROUP BY 1
            UNION ALL
            SELECT p.enrollment_id, count(*) FROM session_participants p
            JOIN class_sessions s ON s.id = p.session_id
            WHERE p.status = 'confirmed' AND s.status IN {BOOKED} GROUP BY 1)
        SELECT e.id AS enrollment_id,
               coalesce(e.sessions_completed, 0) AS completed, coalesce(c.n, 0) AS consume_rows,
               coalesce(e.sessions_forfeited, 0) AS forfeited, coalesce(f.n, 0) AS expire_credits,
               coalesce(e.sessions_scheduled, 0) AS scheduled, coalesce(b.n, 0) AS booked_sessions
        FROM enrollments e
        LEFT JOIN consumed c ON c.enrollment_id = e.id
        LEFT JOIN forfeited f ON f.enrollment_id = e.id
        LEFT JOIN (SELECT enrollment_id, sum(n) AS n FROM booked GROUP BY 1) b ON b.enrollment_id = e.id
        WHERE coalesce(e.sessions_completed, 0) <> coalesce(c.n, 0)
           OR coalesce(e.sessions_forfeited, 0) <> coalesce(f.n, 0)
           OR coalesce(e.sessions_scheduled, 0) <> coalesce(b.n, 0)
        ORDER BY e.id
        """,
        "counters disagree with the ledger and sessions: completed {completed} vs {consume_rows} CONSUME, "
        "forfeited {forfeited} vs {expire_credits} EXPIRE, scheduled {scheduled} vs {booked_sessions} booked",
    ),
    Check(
        "enrollment_overdrawn",
        """
        SELECT id AS enrollment_id, sessions_total - coalesce(sessions_scheduled, 0)
               - coalesce(sessions_completed, 0) - coalesce(sessions_cancelled, 0)
               - coalesce(sessions_forfeited, 0) AS remaining
        FROM enrollments
        WHERE sessions_total IS NOT NULL
          AND sessions_total - coalesce(sessions_scheduled, 0) - coalesce(sessions_completed, 0)
              - coalesce(sessions_cancelled, 0) - coalesce(sessions_forfeited, 0) < 0
        ORDER BY id
        """,
        "uses more credits than it has (remaining {remaining})",
    ),
    Check(
        "double_consume",
        """
        SELECT session_id, student_id, count(*) AS consume_rows FROM credit_ledger
        WHERE action = 'CONSUME' GROUP BY session_id, student_id HAVING count(*) > 1
        ORDER BY session_id
        """,
        "{consume_rows} CONSUME rows for one session and student",
    ),
    Check(
        "consume_without_completion",
        """
        SELECT l.session_id, l.student_id FROM credit_ledger l JOIN class_sessions s ON s.id = l.session_id
        WHERE l.action = 'CONSUME' AND s.status <> 'completed' ORDER BY l.session_id
        """,
        "a credit was consumed for a session that is not completed",
    ),
    Check(
        "waitlist_over_offered",
        """
        WITH offers AS (
            SELECT service_id, count(*) AS n FROM waitlist_entries WHERE status = 'notified' GROUP BY 1),
        taken AS (
            SELECT service_id, count(*) AS n FROM enrollments
            WHERE status IN ('active', 'pending_payment') GROUP BY 1)
        SELECT s.id AS service_id, o.n AS open_offers,
               greatest(s.max_participants - coalesce(t.n, 0), 0) AS free_seats
        FROM services s JOIN offers o ON o.service_id = s.id LEFT JOIN taken t ON t.service_id = s.id
        WHERE s.max_participants IS NOT NULL AND o.n > greatest(s.max_participants - coalesce(t.n, 0), 0)
        ORDER BY s.id
        """,
        "{open_offers} open offers for {free_seats} free seats",
    ),
    Check(
        "sent_message_without_contact_log",
        """
        SELECT m.id AS message_id FROM scheduled_messages m
        LEFT JOIN contact_log c ON c.id = m.contact_log_id
        WHERE m.status = 'sent' AND c.id IS NULL ORDER BY m.id
        """,
        "a message marked sent has no contact_log row",
    ),
    Check(
        "erasure_incomplete",
        f"""
        SELECT r.id AS request_id, r.student_id FROM data_erasure_requests r
        JOIN students s ON s.id = r.student_id
        WHERE r.status = 'completed' AND (
            s.name <> '{ERASED_NAME}' OR s.email <> {erased_email_sql("s.id")}
            OR {" OR ".join(f"s.{c} IS NOT NULL" for c in STUDENT_COLUMNS_CLEARED)}
            OR EXISTS (SELECT 1 FROM session_content c JOIN class_sessions cs ON cs.id = c.session_id
                       WHERE cs.student_id = s.id
                       AND ({" OR ".join(f"c.{c} IS NOT NULL" for c in SESSION_CONTENT_CLEARED)}))
            OR EXISTS (SELECT 1 FROM notifications x
                       WHERE x.student_id = s.id OR x.payload ->> 'student_id' = s.id::text)
            {"".join(f"OR {_has_rows(t.name, 'student_id', 's.id')} " for t in DELETED_WITH_STUDENT)})
        ORDER BY r.id
        """,
        "the erasure request is completed but the student still has personal data",
    ),
    Check(
        "lifecycle_duplicate_milestone",
        """
        SELECT student_id, metadata->>'milestone' AS milestone, count(*) AS events
        FROM student_lifecycle_events WHERE event_type = 'milestone_reached'
        GROUP BY 1, 2 HAVING count(*) > 1 ORDER BY 1, 2
        """,
        "milestone {milestone} recorded {events} times for one student",
    ),
    Check(
        # lifecycle.detect runs daily: a booking older than a day should have reactivated the student
        "churned_with_future_booking",
        """
        WITH bookings AS (
            SELECT student_id, id AS session_id, created_at FROM class_sessions
            WHERE student_id IS NOT NULL AND status IN ('pending_confirmation', 'scheduled')
              AND ends_at > now()
            UNION ALL
            SELECT p.student_id, s.id, p.created_at FROM session_participants p
            JOIN class_sessions s ON s.id = p.session_id
            WHERE p.status = 'confirmed' AND s.status IN ('pending_confirmation', 'scheduled')
              AND s.ends_at > now())
        SELECT st.id AS student_id, min(b.session_id::text) AS session_id FROM students st
        JOIN bookings b ON b.student_id = st.id
        WHERE st.status = 'churned' AND b.created_at < now() - interval '1 day'
        GROUP BY st.id ORDER BY st.id
        """,
        "the student is churned but has a future booking made more than a day ago",
    ),
    Check(
        "review_request_past_expiry",
        """
        SELECT id AS review_request_id, expires_at FROM review_requests
        WHERE status = 'pending' AND expires_at < now() - interval '1 day' ORDER BY expires_at
        """,
        "the review request is still pending more than a day after it expired at {expires_at}",
        needs=review_requests,
    ),
)

# Pickatale: a class's cap counts its memberships with archived_at IS NULL.
CLASS_CAP = 33

PICKATALE_CHECKS = (
    Check(
        "class_over_cap",
        f"""
        SELECT class_id, count(*) AS active_memberships FROM teacher_portal.class_memberships
        WHERE archived_at IS NULL GROUP BY class_id HAVING count(*) > {CLASS_CAP} ORDER BY class_id
        """,
        f"{{active_memberships}} active memberships, more than the cap of {CLASS_CAP}",
    ),
)

# Every table holding a learner's rows under their uuid; then, for an anonymised student row (the
# uuid is replaced by then), the login sessions and active memberships keyed on its integer id.
LEARNER_ERASURE_CHECKS = (
    Check(
        "learner_erasure_incomplete",
        f"""
        SELECT r.id AS request_id, r.learner_id FROM account_center.learner_erasure_requests r
        WHERE r.status = 'completed' AND (
            {" OR ".join(_has_rows(t.fullname, "learner_id", "r.learner_id") for t in BY_LEARNER_UUID)}
            OR EXISTS (SELECT 1 FROM teacher_portal.students x WHERE x.uuid = r.learner_id))
        ORDER BY r.id
        """,
        "the learner erasure is completed but the learner still has rows",
    ),
    Check(
        "erased_learner_still_active",
        f"""
        SELECT s.id AS student_id FROM teacher_portal.students s
        WHERE s.name = '{LEARNER_ERASED_NAME}' AND (
            EXISTS (SELECT 1 FROM account_center.sessions x WHERE x.student_id = s.id)
            OR EXISTS (SELECT 1 FROM teacher_portal.class_memberships x
                       WHERE x.student_id = s.id AND x.archived_at IS NULL))
        ORDER BY s.id
        """,
        "an erased learner still has login sessions or an active class membership",
    ),
)


async def _read_only(conn: AsyncConnection, dialect: str) -> None:
    # applies to this transaction only, so the pooled connection comes back as it was
    if dialect == "postgresql":
        await conn.exec_driver_sql("SET TRANSACTION READ ONLY")
    else:
        await conn.exec_driver_sql("START TRANSACTION READ ONLY")


async def audit_pinteach(engine: AsyncEngine) -> list[Violation]:
    found: list[Violation] = []
    async with engine.connect() as conn:
        await conn.begin()
        await _read_only(conn, "postgresql")
        for check in PINTEACH_CHECKS:
            if check.needs is not None and await missing_table(conn, check.needs):
                continue  # `jobfleet db check` names what is off
            found += check.violations((await conn.execute(text(check.sql))).all())
        await conn.rollback()
    return found


def in_databases(sql: str, conn: AsyncConnection) -> str:
    """Raw SQL naming Pickatale's databases, mapped to the prefixed ones where the engine has a prefix
    (schema_translate_map applies to Core statements only)."""
    names = conn.sync_connection.get_execution_options().get("schema_translate_map") or {}
    return re.sub(r"\b(\w+)\.(?=\w)", lambda m: f"{names.get(m.group(1), m.group(1))}.", sql)


async def audit_pickatale(engine: AsyncEngine) -> tuple[list[Violation], list[str]]:
    """The Pickatale invariants, and the checks skipped because a migration has not run (one line each)."""
    found: list[Violation] = []
    async with engine.connect() as conn:
        skipped = [line] if (line := await missing_table(conn, learner_erasure_requests)) else []
        await conn.rollback()
        checks = PICKATALE_CHECKS if skipped else PICKATALE_CHECKS + LEARNER_ERASURE_CHECKS
        await conn.begin()
        await _read_only(conn, "mysql")
        for check in checks:
            found += check.violations((await conn.execute(text(in_databases(check.sql, conn)))).all())
        await conn.rollback()
    return found, skipped


async def audit_telemetry(engine: AsyncEngine, *, max_age_days: float) -> list[Violation]:
    """Retention: no event older than the policy allows plus one day (the daily purge's slack)."""
    cutoff = func.utc_timestamp() - text(f"INTERVAL {float(max_age_days) + 1} DAY")
    async with engine.connect() as conn:
        await conn.begin()
        await _read_only(conn, "mysql")
        # both answered from the created_at index: a lookup and a short range
        oldest = (await conn.execute(select(func.min(events.c.created_at)))).scalar()
        late = (
            (
                await conn.execute(
                    select(events.c.id)
                    .where(events.c.created_at < cutoff)
                    .order_by(events.c.created_at)
                    .limit(20)
                )
            )
            .scalars()
            .all()
        )
        await conn.rollback()
    if not late:
        return []
    return [
        Violation(
            "telemetry_retention",
            f"events older than {max_age_days:g} days + 1 (oldest {oldest})",
            {"event_ids": ",".join(map(str, late))},
        )
    ]


async def main(settings: Settings, args: argparse.Namespace) -> int:
    from db.engines import pickatale_engine, pinteach_engine
    from jobfleet import wire
    from jobs.retention.policies import telemetry_max_age

    pg = pinteach_engine(settings.pinteach_dsn, pool_size=1)
    my = pickatale_engine(settings.pickatale_dsn, prefix=settings.pickatale_db_prefix, pool_size=1)
    try:
        found = await audit_pinteach(pg)
        if not args.skip_pickatale:
            max_age = telemetry_max_age(settings.retention_file)
            found += await audit_telemetry(my, max_age_days=max_age.total_seconds() / 86400)
            pickatale, skipped = await audit_pickatale(my)
            found += pickatale
            for line in skipped:
                print(f"not checked: {line}", file=sys.stderr)
    finally:
        await pg.dispose()
        await my.dispose()
    for violation in found:
        print(
            wire.encode({"check": violation.check, "message": violation.message, **violation.ids}).decode()
            if args.json
            else violation
        )
    if not args.json:
        print(f"{len(found)} violation(s)" if found else "all invariants hold")
    return EXIT_VIOLATIONS if found else 0

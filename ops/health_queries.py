"""Domain health: the signs in PinTeach and Pickatale that a sweep is not keeping up.

Each number is one aggregate query. Most ride an index of the DDL (class_sessions (status,
ends_at), session_calendar_sync (sync_status), data_erasure_requests (status, due_at),
learner_erasure_requests (status, due_at), review_requests (status, expires_at),
telemetry.events (created_at)); enrollments, waitlist offers, OAuth connections and
soft-deleted students have no index for the question, so those scan tables that grow with
teachers and students, not with traffic.
The schema is not ours to index, so the whole read is cached (``DomainHealthCache``) and runs at
most once per ``domain_health_cache_s`` whoever asks: pages, /metrics, several Prometheus servers.
"""

import asyncio
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import and_, case, func, literal_column, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from db.pickatale import events, learner_erasure_requests
from db.pinteach import (
    class_sessions,
    data_erasure_requests,
    data_retention_settings,
    enrollments,
    job_outbox,
    oauth_connections,
    review_requests,
    session_calendar_sync,
    students,
    waitlist_entries,
)
from db.schema import missing_table
from jobs.deps import Deps
from jobs.retention.policies import PolicyError, telemetry_max_age
from jobs.retention.teacher_policies import ERASURE_DUE

log = structlog.get_logger("jobfleet.ops.health")

GDPR_WARNING_DAYS = 3
OPEN_ERASURE = ("pending", "processing")
DUE_SESSION = ("scheduled", "in_progress")


@dataclass(frozen=True, slots=True)
class DomainHealth:
    checked_at: float
    sessions_overdue: int | None = None
    oldest_overdue_session_age_s: float | None = None
    enrollments_expired_with_credits: int | None = None
    waitlist_offers_past_window: int | None = None
    oldest_offer_past_window_age_s: float | None = None
    calendar_syncs_failed: int | None = None
    calendar_reconnects_required: int | None = None
    gdpr_due_within_3_days: int | None = None
    gdpr_overdue: int | None = None
    oldest_gdpr_overdue_age_s: float | None = None
    learner_erasures_due_within_3_days: int | None = None
    learner_erasures_overdue: int | None = None
    oldest_learner_erasure_overdue_age_s: float | None = None
    review_requests_past_expiry: int | None = None
    oldest_review_request_past_expiry_age_s: float | None = None
    deleted_students_due_for_erasure: int | None = None
    oldest_telemetry_age_s: float | None = None
    # None where job_outbox is missing (migration 0080 not run): the relay is off
    outbox_rows: int | None = None
    oldest_outbox_row_age_s: float | None = None
    telemetry_policy_s: float | None = None  # retention.toml's telemetry.events policy
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _age_s(now: datetime, then: datetime | None) -> float:
    """0 when there is nothing old: the query answered and found no row."""
    if then is None:
        return 0.0
    if then.tzinfo is None:  # Pickatale DATETIME columns hold UTC
        then = then.replace(tzinfo=UTC)
    return max((now - then).total_seconds(), 0.0)


async def _pinteach(deps: Deps, grace: timedelta, timeout_s: float) -> dict[str, Any]:
    remaining = (
        func.coalesce(enrollments.c.sessions_total, 0)
        - func.coalesce(enrollments.c.sessions_scheduled, 0)
        - func.coalesce(enrollments.c.sessions_completed, 0)
        - func.coalesce(enrollments.c.sessions_cancelled, 0)
        - func.coalesce(enrollments.c.sessions_forfeited, 0)
    )
    soon = func.now() + timedelta(days=GDPR_WARNING_DAYS)
    open_erasure = data_erasure_requests.c.status.in_(OPEN_ERASURE)
    async with deps.pinteach.begin() as conn:
        await conn.execute(text(f"SET LOCAL statement_timeout = {int(timeout_s * 1000)}"))
        await conn.execute(text("SET TRANSACTION READ ONLY"))
        now = (await conn.execute(select(func.now()))).scalar_one()
        sessions = (
            await conn.execute(
                select(func.count(), func.min(class_sessions.c.ends_at)).where(
                    class_sessions.c.status.in_(DUE_SESSION), class_sessions.c.ends_at <= func.now() - grace
                )
            )
        ).one()
        expired = (
            await conn.execute(
                select(func.count()).where(
                    enrollments.c.status == "active", enrollments.c.valid_until < func.now(), remaining > 0
                )
            )
        ).scalar_one()
        offers = (
            await conn.execute(
                select(func.count(), func.min(waitlist_entries.c.offer_expires_at)).where(
                    waitlist_entries.c.status == "notified", waitlist_entries.c.offer_expires_at < func.now()
                )
            )
        ).one()
        syncs_failed = (
            await conn.execute(select(func.count()).where(session_calendar_sync.c.sync_status == "failed"))
        ).scalar_one()
        reconnects = (
            await conn.execute(select(func.count()).where(oauth_connections.c.revoked_at.is_not(None)))
        ).scalar_one()
        gdpr = (
            await conn.execute(
                select(
                    func.count().filter(
                        and_(
                            data_erasure_requests.c.due_at >= func.now(),
                            data_erasure_requests.c.due_at < soon,
                        )
                    ),
                    func.count().filter(data_erasure_requests.c.due_at < func.now()),
                    func.min(data_erasure_requests.c.due_at),
                ).where(open_erasure, data_erasure_requests.c.due_at < soon)
            )
        ).one()
        teachers = await _teacher_settings(conn, now)
        # the relay keeps the outbox near empty: a count that grows means relays are down or failing
        outbox = None
        if await missing_table(conn, job_outbox) is None:
            outbox = (await conn.execute(select(func.count(), func.min(job_outbox.c.created_at)))).one()
    oldest_due = sessions[1] + grace if sessions[1] is not None else None
    overdue_gdpr = gdpr[2] if gdpr[1] else None
    return {
        "sessions_overdue": sessions[0],
        "oldest_overdue_session_age_s": _age_s(now, oldest_due),
        "enrollments_expired_with_credits": expired,
        "waitlist_offers_past_window": offers[0],
        "oldest_offer_past_window_age_s": _age_s(now, offers[1]),
        "calendar_syncs_failed": syncs_failed,
        "calendar_reconnects_required": reconnects,
        "gdpr_due_within_3_days": gdpr[0],
        "gdpr_overdue": gdpr[1],
        "oldest_gdpr_overdue_age_s": _age_s(now, overdue_gdpr),
        **teachers,
        "outbox_rows": outbox[0] if outbox else None,
        "oldest_outbox_row_age_s": _age_s(now, outbox[1]) if outbox else None,
    }


async def _teacher_settings(conn: AsyncConnection, now: datetime) -> dict[str, Any]:
    """Backlogs of the jobs that follow the teachers' own settings (migration 0080); a database
    without the migration leaves them unknown (None), the rest of the page stands."""
    found: dict[str, Any] = {}
    if await missing_table(conn, review_requests) is None:
        # the (status, expires_at) index: a short range
        past, oldest = (
            await conn.execute(
                select(func.count(), func.min(review_requests.c.expires_at)).where(
                    review_requests.c.status == "pending", review_requests.c.expires_at < func.now()
                )
            )
        ).one()
        found["review_requests_past_expiry"] = past
        found["oldest_review_request_past_expiry_age_s"] = _age_s(now, oldest)
    if await missing_table(conn, data_retention_settings) is None:
        # students of the teachers who set the policy (their deleted_at has no index)
        found["deleted_students_due_for_erasure"] = (
            await conn.execute(select(func.count()).select_from(students).where(ERASURE_DUE))
        ).scalar_one()
    return found


async def _pickatale(deps: Deps) -> dict[str, Any]:
    async with deps.pickatale.connect() as conn:
        # MIN over INDEX(created_at): one index probe
        oldest, now = (
            await conn.execute(select(func.min(events.c.created_at), literal_column("UTC_TIMESTAMP()")))
        ).one()
        now = now.replace(tzinfo=UTC)
        values = {"oldest_telemetry_age_s": _age_s(now, oldest)}
        # None (shown as "—") where the server has not run the migration yet
        if await missing_table(conn, learner_erasure_requests) is None:
            values |= await _learner_erasures(conn, now)
    return values


async def _learner_erasures(conn: AsyncConnection, now: datetime) -> dict[str, Any]:
    """Open learner erasure requests near or past due_at, from INDEX(status, due_at)."""
    r = learner_erasure_requests.c
    naive_now = now.replace(tzinfo=None)  # the DATETIME columns hold naive UTC
    soon = naive_now + timedelta(days=GDPR_WARNING_DAYS)
    due_soon, overdue, oldest = (
        await conn.execute(
            select(
                func.sum(case((r.due_at >= naive_now, 1), else_=0)),
                func.sum(case((r.due_at < naive_now, 1), else_=0)),
                func.min(r.due_at),
            ).where(r.status.in_(OPEN_ERASURE), r.due_at < soon)
        )
    ).one()
    return {
        "learner_erasures_due_within_3_days": int(due_soon or 0),
        "learner_erasures_overdue": int(overdue or 0),
        "oldest_learner_erasure_overdue_age_s": _age_s(now, oldest if overdue else None),
    }


async def read_domain_health(
    deps: Deps, *, grace_s: float, timeout_s: float, retention_file: Path
) -> DomainHealth:
    """Both databases, each on its own: one that is away leaves the other's numbers standing."""
    values: dict[str, Any] = {}
    errors: list[str] = []
    try:  # read each time: the policy ops see is the one the next purge applies
        values["telemetry_policy_s"] = telemetry_max_age(retention_file).total_seconds()
    except PolicyError as e:
        errors.append(str(e))
    for label, read in (
        ("PinTeach", _pinteach(deps, timedelta(seconds=grace_s), timeout_s)),
        ("Pickatale", _pickatale(deps)),
    ):
        try:
            async with asyncio.timeout(timeout_s + 1):
                values.update(await read)
        except (SQLAlchemyError, OSError, TimeoutError) as e:
            log.warning("domain_health_failed", database=label, error=type(e).__name__)
            errors.append(f"{label}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    return DomainHealth(checked_at=time.time(), errors=errors, **values)


class DomainHealthCache:
    def __init__(
        self, deps: Deps, *, ttl_s: float, grace_s: float, timeout_s: float, retention_file: Path
    ) -> None:
        self.deps = deps
        self.retention_file = retention_file
        self.ttl_s = ttl_s
        self.grace_s = grace_s
        self.timeout_s = timeout_s
        self._value: DomainHealth | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> DomainHealth:
        async with self._lock:  # concurrent askers wait for one read instead of starting their own
            if self._value is None or time.time() - self._value.checked_at >= self.ttl_s:
                self._value = await read_domain_health(
                    self.deps,
                    grace_s=self.grace_s,
                    timeout_s=self.timeout_s,
                    retention_file=self.retention_file,
                )
            return self._value

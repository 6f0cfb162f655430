"""The calendar sync's reads and writes in PinTeach: short transactions, never across an HTTP call.

Two rules make concurrent and repeated runs safe:
- One sync per session at a time: a session-level advisory lock keyed on the session id, taken
  with try-lock (a second run for the same session skips) and held on a connection that is NOT in
  a transaction while the provider is called, so the backend can keep writing the row meanwhile.
- No change is lost: every write of the outcome's status compares ``updated_at`` and
  ``sync_status`` with what the sync read. If the backend changed the row in between, the status
  write matches nothing, and the caller syncs again from the new state.

A failed row's ``updated_at`` holds the time its retry is due (the schema has no column of its
own for it); a change by the backend sets the row back to pending with ``updated_at = now()``.
"""

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Text, and_, cast, func, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db.arrays import is_none_of
from db.pinteach import (
    class_sessions,
    integration_settings,
    notifications,
    oauth_connections,
    services,
    session_calendar_sync,
    students,
)
from jobs import oauth_tokens
from jobs.calendar.provider import Placed
from jobs.oauth_tokens import Tokens

scs = session_calendar_sync


@dataclass(frozen=True, slots=True)
class SyncContext:
    """One session's sync row with everything needed to sync it, read in one statement."""

    session_id: UUID
    sync_status: str
    attempts: int
    updated_at: datetime
    is_due: bool
    google_event_id: str | None
    microsoft_event_id: str | None
    session_status: str
    starts_at: datetime
    ends_at: datetime
    timezone: str
    teacher_id: UUID
    service_name: str
    student_name: str | None
    student_email: str | None
    integration_enabled: bool | None  # None: the teacher has no calendar_write row
    config: Any
    connection_id: UUID | None
    provider: str | None
    access_token: str | None
    refresh_token: str | None
    token_expires_at: datetime | None
    revoked_at: datetime | None
    db_now: datetime

    def event_id(self, provider: str) -> str | None:
        return self.google_event_id if provider == "google" else self.microsoft_event_id

    def __repr__(self) -> str:  # tokens and personal data must not reach a log or a traceback
        return f"SyncContext(session_id={self.session_id}, sync_status={self.sync_status})"


def _lock_key(session_id: UUID) -> Any:
    return func.hashtextextended(literal(f"calendar_sync:{session_id}"), 0)


@asynccontextmanager
async def session_lock(engine: AsyncEngine, session_id: UUID) -> AsyncIterator[AsyncConnection | None]:
    """Yield a connection holding the session's sync lock, or None if another run holds it."""
    async with engine.connect() as conn:
        locked = (await conn.execute(select(func.pg_try_advisory_lock(_lock_key(session_id))))).scalar_one()
        await conn.commit()
        if not locked:
            yield None
            return
        try:
            yield conn
        finally:
            try:
                await conn.execute(select(func.pg_advisory_unlock(_lock_key(session_id))))
                await conn.commit()
            except BaseException:
                # The pool must never hand out a connection that may still hold the lock.
                await conn.invalidate()
                raise


def _is_due(max_attempts: int) -> Any:
    return or_(
        scs.c.sync_status == "pending",
        and_(scs.c.sync_status == "failed", scs.c.attempts < max_attempts, scs.c.updated_at <= func.now()),
    )


async def due_ids(
    conn: AsyncConnection, *, max_attempts: int, limit: int, exclude: Iterable[UUID]
) -> list[UUID]:
    """Rows to sync, oldest first; ``exclude`` holds those this sweep already took."""
    query = (
        select(scs.c.session_id)
        .where(scs.c.sync_status.in_(("pending", "failed")), _is_due(max_attempts))
        .order_by(scs.c.updated_at)
        .limit(limit)
    )
    skip = list(exclude)
    if skip:
        query = query.where(is_none_of(scs.c.session_id, skip))
    return list((await conn.execute(query)).scalars())


async def load(conn: AsyncConnection, session_id: UUID, *, max_attempts: int) -> SyncContext | None:
    cfg = integration_settings.c.config
    query = (
        select(
            scs.c.session_id,
            scs.c.sync_status,
            scs.c.attempts,
            scs.c.updated_at,
            _is_due(max_attempts).label("is_due"),
            scs.c.google_calendar_event_id.label("google_event_id"),
            scs.c.microsoft_event_id,
            class_sessions.c.status.label("session_status"),
            class_sessions.c.starts_at,
            class_sessions.c.ends_at,
            class_sessions.c.timezone,
            class_sessions.c.teacher_id,
            services.c.name.label("service_name"),
            students.c.name.label("student_name"),
            students.c.email.label("student_email"),
            integration_settings.c.enabled.label("integration_enabled"),
            cfg.label("config"),
            oauth_connections.c.id.label("connection_id"),
            oauth_connections.c.provider,
            oauth_connections.c.access_token,
            oauth_connections.c.refresh_token,
            oauth_connections.c.token_expires_at,
            oauth_connections.c.revoked_at,
            func.now().label("db_now"),
        )
        .select_from(
            scs.join(class_sessions, class_sessions.c.id == scs.c.session_id)
            .join(services, services.c.id == class_sessions.c.service_id)
            .outerjoin(
                students, and_(students.c.id == class_sessions.c.student_id, students.c.deleted_at.is_(None))
            )
            .outerjoin(
                integration_settings,
                and_(
                    integration_settings.c.teacher_id == class_sessions.c.teacher_id,
                    integration_settings.c.integration_type == "calendar_write",
                ),
            )
            .outerjoin(
                oauth_connections,
                and_(
                    oauth_connections.c.teacher_id == class_sessions.c.teacher_id,
                    # compared as text: a malformed connectionId must not break the query
                    cast(oauth_connections.c.id, Text) == cfg["connectionId"].astext,
                ),
            )
        )
        .where(scs.c.session_id == session_id)
    )
    async with conn.begin():
        row = (await conn.execute(query)).one_or_none()
    return SyncContext(**row._mapping) if row else None


async def save_tokens(conn: AsyncConnection, connection_id: UUID, tokens: Tokens) -> None:
    # committed at once: a token refreshed must be kept even when the sync then fails
    async with conn.begin():
        await oauth_tokens.save(conn, connection_id, tokens)


def _unchanged(ctx: SyncContext) -> Any:
    return and_(
        scs.c.session_id == ctx.session_id,
        scs.c.updated_at == ctx.updated_at,
        scs.c.sync_status == ctx.sync_status,
    )


async def record_synced(
    conn: AsyncConnection, ctx: SyncContext, *, provider: str | None, placed: Placed | None, deleted: bool
) -> bool:
    """Store where the event is (always: it exists whatever happened to the row meanwhile) and mark
    the row synced if nothing changed since it was read. False: sync again."""
    ids: dict[str, Any] = {}
    if provider == "google" and (placed or deleted):
        ids["google_calendar_event_id"] = placed.event_id if placed else None
        if deleted or (placed and placed.meeting_url):
            ids["google_meet_link"] = placed.meeting_url if placed else None
    if provider == "microsoft" and (placed or deleted):
        ids["microsoft_event_id"] = placed.event_id if placed else None
    if deleted:
        ids["meeting_url"] = None
    elif placed and placed.meeting_url:
        ids["meeting_url"] = placed.meeting_url
    async with conn.begin():
        if ids:
            await conn.execute(update(scs).where(scs.c.session_id == ctx.session_id).values(ids))
        done = await conn.execute(
            update(scs)
            .where(_unchanged(ctx))
            .values(
                sync_status="synced",
                last_synced_at=func.now(),
                attempts=0,
                last_error=None,
                updated_at=func.now(),
            )
        )
    return done.rowcount == 1


async def record_failed(
    conn: AsyncConnection, ctx: SyncContext, *, error: str, attempts: int, retry_in_s: float
) -> bool:
    async with conn.begin():
        done = await conn.execute(
            update(scs)
            .where(_unchanged(ctx))
            .values(
                sync_status="failed",
                attempts=attempts,
                last_error=error,
                updated_at=func.now() + func.make_interval(0, 0, 0, 0, 0, 0, retry_in_s),
            )
        )
    return done.rowcount == 1


async def record_revoked(conn: AsyncConnection, ctx: SyncContext, *, error: str, retry_in_s: float) -> bool:
    """Mark the connection revoked, notify the teacher, and fail the teacher's other pending rows.

    Only the run that revokes it does this (so one notification); False if it was revoked before."""
    async with conn.begin():
        revoked = await conn.execute(
            update(oauth_connections)
            .where(oauth_connections.c.id == ctx.connection_id, oauth_connections.c.revoked_at.is_(None))
            .values(revoked_at=func.now(), updated_at=func.now())
            .returning(oauth_connections.c.provider)
        )
        provider = revoked.scalar_one_or_none()
        if provider is None:
            return False
        name = "Google" if provider == "google" else "Microsoft"
        await conn.execute(
            notifications.insert().values(
                teacher_id=ctx.teacher_id,
                recipient_type="teacher",
                type="calendar.reconnect_required",
                title=f"Reconnect your {name} calendar",
                body=f"PinTeach can no longer update your {name} calendar. "
                "Reconnect it under Settings, Integrations so that your sessions appear there again.",
                payload={"connection_id": str(ctx.connection_id), "provider": provider},
            )
        )
        await conn.execute(
            update(scs)
            .where(
                scs.c.session_id == class_sessions.c.id,
                class_sessions.c.teacher_id == ctx.teacher_id,
                scs.c.sync_status == "pending",
                scs.c.session_id != ctx.session_id,
            )
            .values(
                sync_status="failed",
                attempts=1,
                last_error=error,
                updated_at=func.now() + func.make_interval(0, 0, 0, 0, 0, 0, retry_in_s),
            )
        )
    return True

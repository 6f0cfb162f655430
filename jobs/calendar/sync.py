"""Sync one session's event: the flow both calendar jobs share.

Under the session's lock (see ``store``): read the row and its context, decide what the calendar
must hold, make the provider calls outside any transaction, then record the outcome. If the
backend changed the row meanwhile, sync again from the new state (a few rounds at most; after
that the row stays pending for the sweep).

A worker killed between the provider call and the write leaves the row due, and the retry finds
the event again instead of making a second one: Google by the event id derived from the session
id (an insert that conflicts becomes a patch), Microsoft by ``transactionId``.
"""

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal, TypeVar
from uuid import UUID

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from jobfleet.settings import Settings
from jobs.backoff import backoff_s
from jobs.calendar import rules, store
from jobs.calendar.google import GoogleCalendar
from jobs.calendar.microsoft import MicrosoftCalendar
from jobs.calendar.provider import CalendarProvider, Placed, ProviderError, Revoked, Unauthorized
from jobs.calendar.rules import Action
from jobs.calendar.store import SyncContext
from jobs.deps import Deps
from jobs.errors import NotFound

log = structlog.get_logger()

SUMMARY_KEYS = ("synced", "deleted", "retrying", "failed", "skipped")
MAX_ROUNDS = 3
TOKEN_MARGIN = timedelta(seconds=60)  # refresh a token that would expire during the calls

Kind = Literal["synced", "deleted", "retrying", "failed", "skipped"]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Result:
    kind: Kind
    connection_id: UUID | None = None
    error: str | None = None
    retry_in_s: float | None = None


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What the provider calls achieved, before it is recorded."""

    kind: Literal["synced", "deleted", "transient", "permanent", "revoked"]
    provider: str | None = None
    placed: Placed | None = None
    error: str | None = None
    retry_after_s: float | None = None


def providers_for(settings: Settings) -> dict[str, CalendarProvider]:
    return {"google": GoogleCalendar(settings), "microsoft": MicrosoftCalendar(settings)}


async def sync_one(deps: Deps, session_id: UUID, *, paused: Collection[UUID] = ()) -> Result:
    """Sync one session if it is due. ``paused``: connections not to call (rate-limited this run)."""
    settings = deps.settings
    async with store.session_lock(deps.pinteach, session_id) as conn:
        if conn is None:
            log.info("calendar_sync_busy", session_id=str(session_id))
            return Result("skipped")
        for _ in range(MAX_ROUNDS):
            ctx = await store.load(conn, session_id, max_attempts=settings.calendar_max_attempts)
            if ctx is None:
                raise NotFound(f"session {session_id} has no session_calendar_sync row")
            if not ctx.is_due:
                return Result("skipped", ctx.connection_id)
            if ctx.connection_id in paused:
                return Result("skipped", ctx.connection_id)
            outcome = await _attempt(conn, ctx, providers_for(settings))
            result = await _record(conn, ctx, outcome, settings)
            if result is not None:
                log.info(
                    "calendar_sync_done",
                    session_id=str(session_id),
                    provider=outcome.provider,
                    outcome=result.kind,
                    retry_in_s=result.retry_in_s,
                )
                return result
            log.info("calendar_sync_row_changed", session_id=str(session_id))
        return Result("skipped", ctx.connection_id)


async def _attempt(
    conn: AsyncConnection, ctx: SyncContext, providers: dict[str, CalendarProvider]
) -> _Outcome:
    action = rules.action_for(ctx.session_status)
    if action is Action.KEEP:
        return _Outcome("synced")
    if not ctx.integration_enabled:
        if action is Action.DELETE and not (ctx.google_event_id or ctx.microsoft_event_id):
            return _Outcome("deleted")
        return _Outcome("permanent", error=rules.NOT_ENABLED)
    try:
        config = rules.parse_config(ctx.config)
    except rules.BadConfig as e:
        return _Outcome("permanent", error=str(e))
    if ctx.connection_id is None or ctx.provider is None:
        return _Outcome("permanent", error=rules.NO_CONNECTION)
    if ctx.provider not in rules.SUPPORTED_PROVIDERS:
        return _Outcome(
            "permanent", ctx.provider, error=rules.NOT_SUPPORTED.format(provider=ctx.provider.title())
        )
    if ctx.revoked_at is not None:
        return _Outcome("revoked", ctx.provider, error=rules.RECONNECT_REQUIRED)

    provider_name = ctx.provider
    provider = providers[provider_name]
    event_id = ctx.event_id(provider_name)
    try:
        if action is Action.DELETE:
            if provider_name == "google":
                # Derived ids let a delete find an event whose id a crashed run never stored.
                event_id = event_id or rules.google_event_id(ctx.session_id)
            if event_id:
                await _with_token(
                    conn, ctx, provider, lambda t: provider.delete(t, event_id, config.calendar_id)
                )
            return _Outcome("deleted", provider_name)
        event = rules.event_for(
            session_id=ctx.session_id,
            config=config,
            service_name=ctx.service_name,
            starts_at=ctx.starts_at,
            ends_at=ctx.ends_at,
            timezone=ctx.timezone,
            student_name=ctx.student_name,
            student_email=ctx.student_email,
        )
        placed = await _with_token(conn, ctx, provider, lambda t: provider.upsert(t, event_id, event))
        return _Outcome("synced", provider_name, placed)
    except rules.BadConfig as e:
        return _Outcome("permanent", provider_name, error=str(e))
    except Revoked:
        return _Outcome("revoked", provider_name, error=rules.RECONNECT_REQUIRED)
    except ProviderError as e:
        log.warning(
            "calendar_provider_error",
            session_id=str(ctx.session_id),
            provider=provider_name,
            status=e.status,
            transient=e.transient,
        )
        return _Outcome(
            "transient" if e.transient else "permanent",
            provider_name,
            error=str(e),
            retry_after_s=e.retry_after_s,
        )


async def _with_token(
    conn: AsyncConnection, ctx: SyncContext, provider: CalendarProvider, call: Callable[[str], Awaitable[T]]
) -> T:
    """Call with the stored access token; refresh it first if it expires, and once on a 401."""
    token = ctx.access_token
    if token is None or ctx.token_expires_at is None or ctx.token_expires_at <= ctx.db_now + TOKEN_MARGIN:
        token = await _refresh(conn, ctx, provider)
    try:
        return await call(token)
    except Unauthorized:
        return await call(await _refresh(conn, ctx, provider))


async def _refresh(conn: AsyncConnection, ctx: SyncContext, provider: CalendarProvider) -> str:
    if not ctx.refresh_token or ctx.connection_id is None:
        raise Revoked("no refresh token stored")
    tokens = await provider.refresh(ctx.refresh_token)
    # Stored at once: a rotated refresh token lost to a later failure could lock the teacher out.
    await store.save_tokens(conn, ctx.connection_id, tokens)
    log.info(
        "calendar_token_refreshed", connection_id=str(ctx.connection_id), rotated=bool(tokens.refresh_token)
    )
    return tokens.access_token


async def _record(
    conn: AsyncConnection, ctx: SyncContext, outcome: _Outcome, settings: Settings
) -> Result | None:
    """Write the outcome; None when the row changed meanwhile and must be synced again."""
    max_attempts = settings.calendar_max_attempts
    if outcome.kind in ("synced", "deleted"):
        done = await store.record_synced(
            conn, ctx, provider=outcome.provider, placed=outcome.placed, deleted=outcome.kind == "deleted"
        )
        return Result(outcome.kind, ctx.connection_id) if done else None

    # A pending row is a fresh change of the session: its attempts start over.
    attempts = (0 if ctx.sync_status == "pending" else ctx.attempts) + 1
    error = outcome.error or "calendar sync failed"
    if outcome.kind == "permanent":
        # No retry until the session changes: the row counts as having used all its attempts.
        done = await store.record_failed(
            conn, ctx, error=error, attempts=max(attempts, max_attempts), retry_in_s=0
        )
        return Result("failed", ctx.connection_id, error) if done else None

    wait_s = backoff_s(
        attempts,
        first_s=settings.calendar_backoff_base_s,
        cap_s=settings.calendar_backoff_cap_s,
        retry_after_s=outcome.retry_after_s,
    )
    if outcome.kind == "revoked" and await store.record_revoked(conn, ctx, error=error, retry_in_s=wait_s):
        log.warning(
            "calendar_connection_revoked",
            connection_id=str(ctx.connection_id),
            teacher_id=str(ctx.teacher_id),
        )
    if not await store.record_failed(conn, ctx, error=error, attempts=attempts, retry_in_s=wait_s):
        return None
    if attempts >= max_attempts or outcome.kind == "revoked":
        # Revoked: later attempts only look whether the teacher reconnected; no job retry needed.
        return Result("failed", ctx.connection_id, error)
    return Result("retrying", ctx.connection_id, error, wait_s)

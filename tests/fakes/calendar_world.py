"""Seeding for the calendar sync tests: teachers with a connected calendar, sessions with sync rows."""

import itertools
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import func, update

from db import pinteach as t
from tests.factories import PinTeach, ago, ahead
from tests.fakes.google_server import FakeGoogle
from tests.fakes.microsoft_server import FakeMicrosoft

_n = itertools.count(1)


def on_the_hour(when: datetime) -> datetime:
    return when.replace(minute=0, second=0, microsecond=0)


class World:
    def __init__(self, seed: PinTeach, google: FakeGoogle, microsoft: FakeMicrosoft) -> None:
        self.seed = seed
        self.google = google
        self.microsoft = microsoft

    async def teacher(
        self,
        provider: str = "google",
        *,
        meet: bool = False,
        token: str = "valid",  # valid | expired | refused (unknown to the provider, not yet expired)
        refresh_known: bool = True,
        calendar_id: str | None = None,
    ) -> dict[str, Any]:
        n = next(_n)
        teacher_id = await self.seed.teacher()
        access, refresh = f"access-{provider}-{n}", f"refresh-{provider}-{n}"
        fake = {"google": self.google, "microsoft": self.microsoft}.get(provider)
        if fake is not None:
            if token == "valid":
                fake.access_tokens.add(access)
            if refresh_known:
                fake.refresh_tokens.add(refresh)
        connection_id = await self.seed.insert(
            t.oauth_connections,
            teacher_id=teacher_id,
            provider=provider,
            provider_account_id=f"account-{n}",
            access_token=access,
            refresh_token=refresh,
            token_expires_at=ago(minutes=5) if token == "expired" else ahead(hours=1),
        )
        config: dict[str, Any] = {"connectionId": str(connection_id), "createMeetLink": meet}
        if calendar_id:
            config["calendarId"] = calendar_id
        await self.seed.insert(
            t.integration_settings, teacher_id=teacher_id, integration_type="calendar_write", config=config
        )
        return {
            "teacher_id": teacher_id,
            "connection_id": connection_id,
            "access": access,
            "refresh": refresh,
        }

    async def session(self, teacher: dict[str, Any], *, group: bool = False, **kw: Any) -> UUID:
        teacher_id = teacher["teacher_id"]
        service_id = await self.seed.service(teacher_id, group_type="group" if group else "individual")
        if not group:
            student_id = await self.seed.student(teacher_id)
            enrollment_id = await self.seed.enrollment(service_id, student_id, teacher_id)
            kw = {"student_id": student_id, "enrollment_id": enrollment_id, **kw}
        ends_at = kw.pop("ends_at", on_the_hour(ahead(days=2)) + timedelta(hours=1))
        session_id = await self.seed.session(service_id, teacher_id, ends_at=ends_at, **kw)
        await self.seed.insert(t.session_calendar_sync, session_id=session_id, sync_status="pending")
        return session_id

    async def row(self, session_id: UUID) -> Any:
        return await self.seed.row(
            t.session_calendar_sync, t.session_calendar_sync.c.session_id == session_id
        )

    async def change(self, session_id: UUID, **session_values: Any) -> None:
        """What the backend does on a change: update the session, set its sync row pending."""
        async with self.seed.engine.begin() as conn:
            if session_values:
                await conn.execute(
                    update(t.class_sessions).where(t.class_sessions.c.id == session_id).values(session_values)
                )
            await conn.execute(
                update(t.session_calendar_sync)
                .where(t.session_calendar_sync.c.session_id == session_id)
                .values(sync_status="pending", updated_at=func.now())
            )

    async def make_due(self, session_id: UUID) -> None:
        """Let a failed row's retry time pass."""
        async with self.seed.engine.begin() as conn:
            await conn.execute(
                update(t.session_calendar_sync)
                .where(t.session_calendar_sync.c.session_id == session_id)
                .values(updated_at=func.now() - timedelta(seconds=1))
            )

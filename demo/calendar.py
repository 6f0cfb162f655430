"""Demo data for calendar sync: a teacher whose Google connection was revoked, and a lesson whose
sync gave up after its last attempt, so the dashboard's domain health has both to show."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from db.pinteach import class_sessions, oauth_connections, services, session_calendar_sync, teachers
from demo import rows
from demo.rows import insert

# as many attempts as calendar_max_attempts allows by default: the sweep leaves the row for ops
GAVE_UP_ATTEMPTS = 8


async def seed_demo(conn: AsyncConnection) -> dict[str, Any]:
    now = datetime.now(UTC)
    n = uuid.uuid4().hex[:8]
    teacher = await insert(conn, teachers, **rows.teacher(f"demo-calendar-{n}", name="Demo Calendar"))
    service = await insert(
        conn, services, **rows.service(teacher, n, name="Piano lessons", slug=f"piano-{n}", session_count=4)
    )
    session = await insert(
        conn, class_sessions, **rows.session(service, teacher, now + timedelta(days=2), timedelta(hours=1))
    )
    await conn.execute(
        oauth_connections.insert().values(
            teacher_id=teacher,
            provider="google",
            provider_account_id=f"demo-{n}",
            revoked_at=now - timedelta(hours=3),
        )
    )
    await conn.execute(
        session_calendar_sync.insert().values(
            session_id=session,
            sync_status="failed",
            attempts=GAVE_UP_ATTEMPTS,
            last_error="invalid_grant: the teacher must reconnect Google Calendar",
        )
    )
    return {"teacher_id": teacher, "session_id": session}

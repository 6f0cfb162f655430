"""Demo data for the retention policies: some Pickatale rows past their age, some not."""

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from db.pickatale import account_center_sessions, events, reading_sessions


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)  # Pickatale DATETIMEs hold naive UTC


async def seed_demo(conn: AsyncConnection) -> dict[str, int]:
    """Telemetry events 120 and 10 days old, dead and live logins, stale and fresh open readings.

    A purge run (``telemetry.purge``) then deletes the 40 old events and 3 dead logins and marks
    2 reading sessions abandoned; everything else stays.
    """
    now = _utc_now()
    learner = str(uuid.uuid4())
    session = str(uuid.uuid4())
    old, new = 40, 20
    await conn.execute(
        events.insert().values(
            [
                {
                    "event_id": str(uuid.uuid4()),
                    "learner_id": learner,
                    "session_id": session,
                    "event_type": "page_turned",
                    "book_id": "demo-book",
                    "page_number": i % 30 + 1,
                    "time_on_page_ms": 4000,
                    "client_ts": int((now - age).timestamp() * 1000),
                    "created_at": now - age,
                }
                for i, age in enumerate([timedelta(days=120)] * old + [timedelta(days=10)] * new)
            ]
        )
    )
    logins = [
        {"expires_at": now - timedelta(days=45), "invalidated_at": None},  # expired long ago
        {"expires_at": now + timedelta(days=5), "invalidated_at": now - timedelta(days=40)},  # logged out
        {"expires_at": now - timedelta(days=31), "invalidated_at": now - timedelta(days=32)},
        {"expires_at": now - timedelta(days=3), "invalidated_at": None},  # expired recently: kept
        {"expires_at": now + timedelta(days=7), "invalidated_at": None},  # live: kept
    ]
    await conn.execute(
        account_center_sessions.insert().values(
            [
                {
                    "user_id": 1,
                    "role": "teacher",
                    "token_hash": uuid.uuid4().hex + uuid.uuid4().hex,
                    "created_at": now - timedelta(days=60),
                    **login,
                }
                for login in logins
            ]
        )
    )
    readings = [
        ("open", now - timedelta(days=3), now - timedelta(days=2)),  # stale: abandoned
        ("open", now - timedelta(days=2), None),  # never an event, started 2 days ago: abandoned
        ("open", now - timedelta(hours=2), now - timedelta(minutes=5)),  # reading now: kept
        ("completed", now - timedelta(days=5), now - timedelta(days=5)),  # finished: kept
    ]
    await conn.execute(
        reading_sessions.insert().values(
            [
                {
                    "session_id": str(uuid.uuid4()),
                    "learner_id": learner,
                    "book_id": "demo-book",
                    "state": state,
                    "pages_read": 3,
                    "words_read": 120,
                    "started_at": started,
                    "last_event_at": last_event,
                    "created_at": started,
                }
                for state, started, last_event in readings
            ]
        )
    )
    return {"old_events": old, "new_events": new, "dead_logins": 3, "stale_readings": 2}

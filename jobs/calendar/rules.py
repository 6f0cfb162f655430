"""What a session's calendar event must look like, and when to retry: the rules, free of HTTP.

- Booked sessions (scheduled, in progress, awaiting confirmation or review) must have an event;
  cancelled, expired, rescheduled and no-show sessions must have none. Holds and completed
  sessions are left as they are.
- Only Google and Microsoft calendars can be written to.
- A retry-worthy failure waits an exponentially growing, capped, jittered delay (never less than
  the provider's Retry-After); after ``max_attempts`` the row stays failed until its session changes.
"""

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

EVENT_STATUSES = frozenset({"scheduled", "in_progress", "pending_confirmation", "pending_review"})
NO_EVENT_STATUSES = frozenset(
    {
        "cancelled_by_student",
        "cancelled_by_teacher",
        "cancelled_system",
        "no_show_student",
        "no_show_teacher",
        "rescheduled",
        "expired",
    }
)
SUPPORTED_PROVIDERS = frozenset({"google", "microsoft"})

RECONNECT_REQUIRED = (
    "The calendar connection was revoked or has expired: the teacher must reconnect the calendar"
)
NOT_SUPPORTED = "{provider} is not supported for calendar sync: connect a Google or Microsoft calendar"
NOT_ENABLED = "Calendar sync is not enabled for this teacher (no enabled calendar_write integration)"
NO_CONNECTION = "The calendar connection named in the calendar_write settings does not exist: reconnect it"


class Action(Enum):
    UPSERT = "upsert"  # the event must exist and match the session
    DELETE = "delete"  # the event must not exist
    KEEP = "keep"  # leave the calendar as it is


def action_for(session_status: str) -> Action:
    if session_status in EVENT_STATUSES:
        return Action.UPSERT
    if session_status in NO_EVENT_STATUSES:
        return Action.DELETE
    return Action.KEEP


@dataclass(frozen=True, slots=True)
class CalendarConfig:
    connection_id: UUID
    calendar_id: str
    create_meet_link: bool


class BadConfig(ValueError):
    """The teacher's calendar_write settings cannot be used; the message says why."""


def parse_config(config: Any) -> CalendarConfig:
    if not isinstance(config, dict):
        raise BadConfig("calendar_write config must be a JSON object")
    try:
        connection_id = UUID(str(config["connectionId"]))
    except (KeyError, ValueError):
        raise BadConfig(
            "calendar_write config needs connectionId, the id of an oauth_connections row"
        ) from None
    calendar_id = config.get("calendarId") or "primary"
    create_meet_link = config.get("createMeetLink", False)
    if not isinstance(calendar_id, str) or not isinstance(create_meet_link, bool):
        raise BadConfig("calendar_write config: calendarId must be a string and createMeetLink a boolean")
    return CalendarConfig(connection_id, calendar_id, create_meet_link)


@dataclass(frozen=True, slots=True)
class Attendee:
    email: str
    name: str


@dataclass(frozen=True, slots=True)
class EventSpec:
    """A session's event, provider-neutral. Start and end are local times in ``timezone``."""

    session_id: UUID
    calendar_id: str
    title: str
    starts_at: datetime
    ends_at: datetime
    timezone: str
    attendee: Attendee | None
    online_meeting: bool


def event_for(
    *,
    session_id: UUID,
    config: CalendarConfig,
    service_name: str,
    starts_at: datetime,
    ends_at: datetime,
    timezone: str,
    student_name: str | None,
    student_email: str | None,
) -> EventSpec:
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadConfig(f"the session's timezone {timezone!r} is not a known IANA time zone") from None
    # Only individual sessions name one student; a group session's event carries the service name.
    individual = student_name is not None
    return EventSpec(
        session_id=session_id,
        calendar_id=config.calendar_id,
        title=f"{service_name} with {student_name}" if individual else service_name,
        starts_at=starts_at.astimezone(zone).replace(tzinfo=None),
        ends_at=ends_at.astimezone(zone).replace(tzinfo=None),
        timezone=timezone,
        attendee=Attendee(student_email, student_name) if individual and student_email else None,
        online_meeting=config.create_meet_link,
    )


def google_event_id(session_id: UUID) -> str:
    """Calendar accepts client-chosen ids in base32hex (a-v, 0-9); a UUID's hex digits are in it."""
    return session_id.hex

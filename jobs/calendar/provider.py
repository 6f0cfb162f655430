"""What a calendar provider adapter offers and how it fails, shared by the Google and Microsoft ones.

Adapter messages are safe to store in ``last_error`` and to log: they name the provider, the HTTP
status and the provider's reason code, never a token or a response body.
"""

from dataclasses import dataclass
from typing import Protocol

from jobs.calendar.rules import EventSpec
from jobs.oauth_tokens import Tokens


@dataclass(frozen=True, slots=True)
class Placed:
    """Where the session's event now lives."""

    event_id: str
    meeting_url: str | None


class ProviderError(Exception):
    def __init__(
        self, message: str, *, transient: bool, status: int | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.transient = transient
        self.status = status
        self.retry_after_s = retry_after_s


class Unauthorized(ProviderError):
    """The access token was refused: refresh it and try once more."""

    def __init__(self, message: str) -> None:
        super().__init__(message, transient=True, status=401)


class Revoked(Exception):
    """The refresh token was refused (invalid_grant): only the teacher can fix it by reconnecting."""


class CalendarProvider(Protocol):
    async def refresh(self, refresh_token: str) -> Tokens: ...

    async def upsert(self, access_token: str, event_id: str | None, event: EventSpec) -> Placed: ...

    async def delete(self, access_token: str, event_id: str, calendar_id: str) -> None: ...


def is_transient_status(status: int) -> bool:
    return status == 429 or status >= 500

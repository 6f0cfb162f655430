"""How a job says it failed, so that the runtime can decide between retrying and giving up."""

from datetime import datetime
from email.utils import parsedate_to_datetime


class JobError(Exception):
    """Base of the failures a job reports on purpose."""


class Transient(JobError):
    """Worth trying again later: a rate limit, a timeout, a server or database that is away."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Permanent(JobError):
    """Trying again would fail the same way: record the failure for ops and stop."""


class NotFound(Permanent):
    """The row a queued job names does not exist."""


def retry_after_s(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds: it holds either seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max((when - datetime.now(when.tzinfo)).total_seconds(), 0.0)

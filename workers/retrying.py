"""Which failures are worth another try, and how long to wait before it."""

import random

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from jobfleet.catalog import JobSpec
from jobs.errors import Permanent, Transient


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, Transient | TimeoutError | ConnectionError):
        return True
    if isinstance(exc, Permanent):
        return False
    if isinstance(exc, OperationalError | InterfaceError):
        # a server restart, a dropped connection, a deadlock or serialization failure
        return True
    if isinstance(exc, DBAPIError):
        return bool(exc.connection_invalidated)
    return isinstance(exc, OSError)


def backoff_s(spec: JobSpec, job_try: int, retry_after_s: float | None = None) -> float:
    """Exponential from the catalog's first delay, capped, with full jitter; a provider's
    Retry-After is honoured as a floor."""
    ceiling = min(spec.max_backoff_s, spec.backoff_s * 2 ** max(job_try - 1, 0))
    delay = random.uniform(ceiling / 2, ceiling)
    return max(delay, retry_after_s or 0)

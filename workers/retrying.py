"""Which failures are worth another try, and how long to wait before it."""

import random

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from jobfleet.catalog import JobSpec
from jobs.errors import Permanent, Transient

# PostgreSQL SQLSTATEs that a later try can get past. asyncpg's errors reach SQLAlchemy as a plain
# DBAPIError (not OperationalError), so the state is the only way to tell a restart from a bug.
TRANSIENT_SQLSTATE_CLASSES = (
    "08",  # connection exception
    "40",  # transaction rollback: serialization failure, deadlock
    "53",  # insufficient resources: too many connections, disk or memory full
)
TRANSIENT_SQLSTATES = frozenset(
    {
        "57P01",  # admin shutdown: the server is stopping (pg_ctl stop/restart -m fast)
        "57P02",  # crash shutdown: another backend crashed
        "57P03",  # cannot connect now: the server is starting up or shutting down
        "55P03",  # lock not available (lock_timeout)
    }
)


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, Transient | TimeoutError | ConnectionError):
        return True
    if isinstance(exc, Permanent):
        return False
    if isinstance(exc, OperationalError | InterfaceError):
        # a server restart, a dropped connection, a deadlock or serialization failure (MySQL)
        return True
    if isinstance(exc, DBAPIError):
        sqlstate = getattr(exc.orig, "sqlstate", None) or ""
        return (
            bool(exc.connection_invalidated)
            or sqlstate in TRANSIENT_SQLSTATES
            or sqlstate[:2] in TRANSIENT_SQLSTATE_CLASSES
        )
    return isinstance(exc, OSError)


def backoff_s(spec: JobSpec, job_try: int, retry_after_s: float | None = None) -> float:
    """Exponential from the catalog's first delay, capped, with full jitter; a provider's
    Retry-After is honoured as a floor."""
    ceiling = min(spec.max_backoff_s, spec.backoff_s * 2 ** max(job_try - 1, 0))
    delay = random.uniform(ceiling / 2, ceiling)
    return max(delay, retry_after_s or 0)

"""Which failures are worth another try (how long to wait: ``jobs.backoff``)."""

import errno
import socket

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

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

# OSErrors of a network path or a server that may come back; ConnectionError's subclasses
# (refused, reset, aborted, broken pipe) are the rest. A missing file or a permission is not here.
CONNECTION_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.ENETRESET,
        errno.EHOSTUNREACH,
        errno.EHOSTDOWN,
        errno.ETIMEDOUT,
        errno.EPIPE,
        errno.ENOTCONN,
    }
)


def is_connection_error(exc: OSError) -> bool:
    if isinstance(exc, ConnectionError | socket.gaierror):  # refused, reset, ...; a name not resolved
        return True
    if exc.errno in CONNECTION_ERRNOS:
        return True
    # asyncio's create_connection, when every address of a host (127.0.0.1 and ::1) failed
    # differently, raises a bare OSError naming them all, with no errno (Python 3.11)
    return exc.errno is None and str(exc).startswith("Multiple exceptions: ")


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, Transient | TimeoutError):
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
    return isinstance(exc, OSError) and is_connection_error(exc)

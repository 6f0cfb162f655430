"""One line for an error a command met: which server was away, or what the driver said."""

import traceback

from redis.exceptions import RedisError

from jobfleet.producer import ProducerUnavailable

# The client library a connection error came out of names the server that is away.
_SERVERS = (("/redis/", "Redis"), ("/asyncpg/", "PostgreSQL"), ("/asyncmy/", "MySQL"))


def server_away(e: BaseException) -> str | None:
    """One line for a server the command could not reach, or None if ``e`` is something else."""
    if isinstance(e, ProducerUnavailable):
        return str(e)
    if isinstance(e, RedisError):
        return f"cannot reach Redis: {e}"
    if not isinstance(e, OSError):
        return None
    files = [frame.filename for frame in traceback.extract_tb(e.__traceback__)]
    for marker, server in _SERVERS:
        if any(marker in f for f in files):
            return f"cannot reach {server}: {e}"
    return f"cannot reach a server: {e}"


def one_line(e: BaseException) -> str:
    """``server_away``'s line, or the error's first line: for SQLAlchemy's the driver's own words,
    without the statement and the "Background on this error" link."""
    if (away := server_away(e)) is not None:
        return away
    cause = getattr(e, "orig", None) or e
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else ''}"

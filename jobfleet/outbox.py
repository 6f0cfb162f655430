"""The transactional outbox, producer side: one ``job_outbox`` row written through the caller's own
PostgreSQL transaction. The fleet's relay (workers/outbox/) turns committed rows into jobs; a rolled
back transaction leaves no row, so no job.

The producer library needs only arq, redis and pydantic, so nothing here imports a database driver:
the caller hands in its connection, an asyncpg ``Connection`` or a SQLAlchemy ``AsyncConnection``
(any driver), and the statement is written in that connection's own parameter style.
"""

from datetime import datetime
from typing import Any

from jobfleet import wire

TABLE = "job_outbox"
CHANNEL = "job_outbox"  # the table's trigger NOTIFYs here at commit
OUTBOX_KEY_PREFIX = "outbox-"

# text then jsonb: a caller's own jsonb codec (asyncpg set_type_codec) must not encode it twice
_COLUMNS = ("job", "payload", "job_key", "run_at", "trace_context")
_CASTS = ("", "::text::jsonb", "", "::timestamptz", "::text::jsonb")


class OutboxUnavailable(TypeError):
    """The connection cannot take an outbox row (not PostgreSQL, not in a transaction, unknown type)."""


def job_id(name: str, job_key: str | None, outbox_id: int) -> str:
    """The id the relay gives the job of one outbox row (shared with the TypeScript producer)."""
    return f"{name}:{job_key}" if job_key else f"{name}:{OUTBOX_KEY_PREFIX}{outbox_id}"


def _placeholders(paramstyle: str) -> list[str]:
    n = range(1, len(_COLUMNS) + 1)
    styles = {
        "numeric_dollar": [f"${i}" for i in n],
        "numeric": [f":{i}" for i in n],
        "qmark": ["?" for _ in n],
        "format": ["%s" for _ in n],
        "pyformat": [f"%({c})s" for c in _COLUMNS],
        "named": [f":{c}" for c in _COLUMNS],
    }
    if paramstyle not in styles:
        raise OutboxUnavailable(f"cannot write the outbox row in parameter style {paramstyle!r}")
    return styles[paramstyle]


def insert_sql(paramstyle: str = "numeric_dollar") -> str:
    values = ", ".join(p + cast for p, cast in zip(_placeholders(paramstyle), _CASTS, strict=True))
    return f"INSERT INTO {TABLE} ({', '.join(_COLUMNS)}) VALUES ({values}) RETURNING id"


_UNDEFINED_TABLE = "42P01"


def _sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of a driver's error, or of the one SQLAlchemy wraps (asyncpg: ``sqlstate``,
    psycopg: ``sqlstate``/``pgcode``), read without importing either."""
    for e in (error, getattr(error, "orig", None)):
        for attr in ("sqlstate", "pgcode"):
            if isinstance(code := getattr(e, attr, None), str):
                return code
    return None


async def insert_row(
    conn: Any,
    name: str,
    payload: dict[str, Any],
    job_key: str | None,
    run_at: datetime | None,
    trace_context: dict[str, str] | None,
) -> int:
    """Insert one outbox row through ``conn`` and return its id; the caller's commit publishes it."""
    try:
        return await _insert(conn, name, payload, job_key, run_at, trace_context)
    except Exception as e:
        if _sqlstate(e) == _UNDEFINED_TABLE:
            raise OutboxUnavailable(
                f"job {name!r} was not enqueued: this database has no {TABLE} table "
                "(PinTeach migration 0080_job_fleet_2)"
            ) from e
        raise


async def _insert(
    conn: Any,
    name: str,
    payload: dict[str, Any],
    job_key: str | None,
    run_at: datetime | None,
    trace_context: dict[str, str] | None,
) -> int:
    values = (
        name,
        wire.encode(payload).decode(),
        job_key,
        run_at,
        wire.encode(trace_context).decode() if trace_context else None,
    )
    if hasattr(conn, "exec_driver_sql"):  # SQLAlchemy AsyncConnection: it begins a transaction itself
        dialect = conn.dialect
        if dialect.name != "postgresql":
            raise OutboxUnavailable(f"the job outbox is a PostgreSQL table, not {dialect.name}")
        params: Any = dict(zip(_COLUMNS, values, strict=True)) if not dialect.positional else values
        result = await conn.exec_driver_sql(insert_sql(dialect.paramstyle), params)
        return int(result.scalar_one())
    if hasattr(conn, "fetchval") and hasattr(conn, "is_in_transaction"):  # asyncpg Connection
        if not conn.is_in_transaction():
            # outside a transaction the row would commit at once: the dual write all over again
            raise OutboxUnavailable("enqueue_in_transaction needs an asyncpg connection inside a transaction")
        return int(await conn.fetchval(insert_sql(), *values))
    raise OutboxUnavailable(
        f"enqueue_in_transaction takes an asyncpg Connection or a SQLAlchemy AsyncConnection, "
        f"not {type(conn).__name__}"
    )

"""Jobs that need a table of a migration the database may not have run yet (migration 0080)."""

import structlog
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from db.schema import missing_table

log = structlog.get_logger()


async def migration_missing(engine: AsyncEngine, job: str, *tables: Table) -> bool:
    """True, with the one line that says what is off and why logged, when a table is missing: the
    job then reports ``migration_missing: 1`` and changes nothing."""
    async with engine.connect() as conn:
        for table in tables:
            if line := await missing_table(conn, table):
                log.warning("migration_missing", job=job, detail=line)
                return True
    return False

"""One retention run at a time, fleet-wide: a MySQL/MariaDB named lock held for the run.

GET_LOCK belongs to the connection that took it, so the lock lives on a connection of its own
that stays open for the whole run; the chunks use other connections. If the worker dies, the
server drops the connection and the lock with it, so a crash never leaves the purge locked out.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


def run_lock_name(db_prefix: str) -> str:
    # Lock names are server-wide (not per database): the prefix keeps a test run or the demo,
    # whose databases are prefixed, from locking out a real Pickatale on the same server.
    return f"{db_prefix}jobfleet.retention"


@asynccontextmanager
async def run_lock(engine: AsyncEngine, name: str) -> AsyncIterator[bool]:
    """Yield True while holding the lock, False at once if another run holds it."""
    async with engine.connect() as conn:
        held = (await conn.execute(text("SELECT GET_LOCK(:name, 0)"), {"name": name})).scalar() == 1
        # The lock outlives transactions: end this one so the held connection pins no snapshot.
        await conn.commit()
        try:
            yield held
        finally:
            if held:
                await conn.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": name})
                await conn.commit()

"""Change many Pickatale rows without long locks: the technique the purge and the learner erasure share.

The rows are taken in primary-key windows of at most ``chunk_size`` ids, each window one short READ
COMMITTED transaction (record locks on the rows it changes, no gap locks, so inserts at the end of
the table never wait on it), with a pause between windows. A time budget is checked after each
window; the caller learns where the walk stopped and the next run goes on from there.
"""

import asyncio
import time
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Delete, Table, Update, func, select
from sqlalchemy.ext.asyncio import AsyncEngine


@dataclass(frozen=True, slots=True)
class Walk:
    chunks: int
    changed: int
    finished: bool  # False when the budget stopped it with rows possibly left


async def walk_chunks(
    engine: AsyncEngine,
    table: Table,
    statement: Delete | Update,
    *,
    where: ColumnElement[bool],
    window: tuple[ColumnElement[bool], ...] = (),
    after: int = 0,
    highest: int | None = None,
    chunk_size: int,
    pause_s: float,
    deadline: float,
) -> Walk:
    """Apply ``statement`` to the rows meeting ``where``, window by window from id ``after`` on.

    ``window`` narrows the ids a window spans: the purge walks every id up to ``highest`` (its due
    rows are the oldest, so dense at the low ids); the erasure walks only one learner's ids, through
    the learner_id index (whose entries carry the primary key, so the window is an index range).
    At least one window runs even with the budget spent, so every run moves on.
    """
    chunks = changed = 0
    while True:
        upto, n = await apply_chunk(
            engine,
            table,
            statement,
            where=where,
            window=window,
            after=after,
            highest=highest,
            limit=chunk_size,
        )
        if upto is None:
            return Walk(chunks, changed, finished=True)
        chunks, changed, after = chunks + 1, changed + n, upto
        if highest is not None and after >= highest:
            return Walk(chunks, changed, finished=True)
        if time.monotonic() >= deadline:
            return Walk(chunks, changed, finished=False)
        await asyncio.sleep(pause_s)


async def apply_chunk(
    engine: AsyncEngine,
    table: Table,
    statement: Delete | Update,
    *,
    where: ColumnElement[bool],
    window: tuple[ColumnElement[bool], ...],
    after: int,
    highest: int | None,
    limit: int,
) -> tuple[int | None, int]:
    """Apply the statement to the rows meeting ``where`` among the next ``limit`` ids of the window;
    return the window's last id (None when it is empty) and the rows changed."""
    (pk,) = table.primary_key.columns
    bounds = (pk > after, *window) if highest is None else (pk > after, pk <= highest, *window)
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="READ COMMITTED")
        async with conn.begin():
            ids = select(pk.label("id")).where(*bounds).order_by(pk).limit(limit).subquery("window")
            upto = (await conn.execute(select(func.max(ids.c.id)))).scalar()
            if upto is None:
                return None, 0
            result = await conn.execute(statement.where(pk > after, pk <= upto, where))
            return upto, result.rowcount

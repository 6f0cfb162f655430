"""Change many Pickatale rows without long locks: the technique the purge and the learner erasure share.

The rows are taken in primary-key windows, each window one short READ COMMITTED transaction
(record locks on the rows it changes, no gap locks, so inserts at the end of the table never wait
on it), with a pause between windows. Each window is sized by time (jobs/retention/chunk_sizer.py):
it takes as many ids as the previous windows suggest fit in the target. A time budget is checked
after each window; the caller learns where the walk stopped and the next run goes on from there.

Two kinds of window:
- an id range, ``(after, after + size]`` up to ``highest`` (the purge: its due rows are the
  oldest, dense at the low ids; finding "the next size rows" would read each of them twice);
- the next ``size`` ids of the rows meeting ``window`` conditions, found through their index (the
  learner erasure: one learner's rows are scattered over the whole table, and the learner_id
  index's entries carry the primary key, so the window is an index range of that learner only).
"""

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Delete, Table, Update, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from jobs.retention.chunk_sizer import ChunkSizer


@dataclass(frozen=True, slots=True)
class Walk:
    chunks: int
    changed: int
    finished: bool  # False when the budget stopped it with rows possibly left
    longest_s: float  # the longest window's transaction
    last_size: int  # the size the sizer had arrived at


async def walk_chunks(
    engine: AsyncEngine,
    table: Table,
    statement: Delete | Update,
    *,
    where: ColumnElement[bool],
    sizer: ChunkSizer,
    pause_s: float,
    deadline: float,
    after: int = 0,
    highest: int | None = None,
    window: tuple[ColumnElement[bool], ...] | None = None,
    timer: Callable[[], float] = time.perf_counter,
) -> Walk:
    """Apply ``statement`` to the rows meeting ``where``, window by window from id ``after`` on:
    id ranges up to ``highest``, or (``window`` given) the next ids of the rows meeting it.

    At least one window runs even with the budget spent, so every run moves on.
    """
    if window is None and highest is None:
        raise ValueError("an id-range walk needs its highest id")
    chunks = changed = 0
    longest_s = 0.0
    while True:
        size, started = sizer.size, timer()
        upto, n = await apply_chunk(
            engine, table, statement, where=where, window=window, after=after, highest=highest, size=size
        )
        took_s = timer() - started
        if upto is None:
            return Walk(chunks, changed, True, longest_s, sizer.size)
        chunks, changed, after = chunks + 1, changed + n, upto
        longest_s = max(longest_s, took_s)
        sizer.observe(size, took_s)
        if highest is not None and after >= highest:
            return Walk(chunks, changed, True, longest_s, sizer.size)
        if time.monotonic() >= deadline:
            return Walk(chunks, changed, False, longest_s, sizer.size)
        await asyncio.sleep(pause_s)


async def apply_chunk(
    engine: AsyncEngine,
    table: Table,
    statement: Delete | Update,
    *,
    where: ColumnElement[bool],
    window: tuple[ColumnElement[bool], ...] | None,
    after: int,
    highest: int | None,
    size: int,
) -> tuple[int | None, int]:
    """Apply the statement to the rows meeting ``where`` in the window after ``after``; return the
    window's last id (None when there is no window left) and the rows changed."""
    (pk,) = table.primary_key.columns
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="READ COMMITTED")
        async with conn.begin():
            if window is None:
                assert highest is not None
                if after >= highest:
                    return None, 0
                upto: int | None = min(after + size, highest)
            else:
                bounds = [pk > after, *window] + ([pk <= highest] if highest is not None else [])
                ids = select(pk.label("id")).where(*bounds).order_by(pk).limit(size).subquery("window")
                upto = (await conn.execute(select(func.max(ids.c.id)))).scalar()
                if upto is None:
                    return None, 0
            result = await conn.execute(statement.where(pk > after, pk <= upto, where))
            return upto, result.rowcount

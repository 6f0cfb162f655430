"""The loop every periodic sweep shares: batches until nothing is due or the time budget is spent."""

import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

# A batch reports how many due rows it took (0 ends the sweep) and the counts to add up.
Batch = Callable[[], Awaitable[tuple[int, dict[str, int]]]]


async def sweep(batch: Batch, *, budget_s: float, keys: Iterable[str]) -> dict[str, int]:
    totals: Counter[str] = Counter(dict.fromkeys(keys, 0))
    deadline = time.monotonic() + budget_s
    while True:
        taken, counts = await batch()
        totals.update(counts)
        if taken == 0 or time.monotonic() >= deadline:
            return dict(totals)


async def sweep_in_transactions(
    engine: AsyncEngine,
    step: Callable[[AsyncConnection], Awaitable[tuple[int, dict[str, int]]]],
    *,
    budget_s: float,
    keys: Iterable[str],
) -> dict[str, int]:
    """The usual sweep: each batch is ``step`` in a transaction of its own."""

    async def batch() -> tuple[int, dict[str, int]]:
        async with engine.begin() as conn:
            return await step(conn)

    return await sweep(batch, budget_s=budget_s, keys=keys)


async def lock_due(
    conn: AsyncConnection,
    id_column: ColumnElement[Any],
    *where: ColumnElement[bool],
    order_by: Sequence[ColumnElement[Any]],
    limit: int,
    key_share: bool = False,
) -> list[Any]:
    """Lock up to ``limit`` due rows no other run holds (FOR UPDATE SKIP LOCKED) and return their
    ids. Ordered as an index is, the scan stops after ``limit`` rows instead of sorting them all;
    ``key_share`` (NO KEY UPDATE) lets inserts that reference the rows go on."""
    query = (
        select(id_column)
        .where(*where)
        .order_by(*order_by)
        .limit(limit)
        .with_for_update(skip_locked=True, key_share=key_share)
    )
    return list((await conn.execute(query)).scalars())

"""The loop every periodic sweep shares: batches until nothing is due or the time budget is spent.

Batches are sized by time, not by a constant: a batch is one transaction and holds its row locks
until it commits, so what must stay bounded is its length, whatever the table size. ``BatchSize``
doubles the batch while full batches commit in well under the target (half of it) and scales it
down in proportion (at most by half, never below a tenth of the first batch) when one takes longer;
``JOBFLEET_SWEEP_BATCH_SIZE`` caps it.

Sweeps that walk an index pass a keyset cursor from batch to batch: the next batch starts at the
last key the previous one saw, so it does not re-read the index entries that earlier batches left
dead behind them.
"""

import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from jobfleet.settings import Settings

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


@dataclass
class BatchSize:
    """Rows for the next batch: grown while batches commit fast, shrunk when one is slow."""

    ceiling: int
    target_s: float
    rows: int = 0
    floor: int = 1

    def __post_init__(self) -> None:
        self.rows = self.rows or self.ceiling
        self.floor = min(self.floor, self.ceiling)

    @classmethod
    def from_settings(cls, settings: Settings) -> "BatchSize":
        ceiling, first = settings.sweep_batch_size, settings.sweep_batch_first
        return cls(ceiling, settings.sweep_batch_target_ms / 1000, min(first, ceiling), max(first // 10, 1))

    def observe(self, taken: int, elapsed_s: float) -> None:
        if elapsed_s > self.target_s:
            # smaller in proportion, but at most halved and never below the floor: part of a
            # batch's time does not depend on its size (a lock wait, a cold cache, a scan), and
            # shrinking the batch cannot remove it, only multiply it
            self.rows = max(self.floor, int(self.rows * max(0.5, self.target_s / elapsed_s)))
        elif taken >= self.rows and elapsed_s < self.target_s / 2:
            # only a full batch says anything about a bigger one
            self.rows = min(self.ceiling, self.rows * 2)


@dataclass(frozen=True, slots=True)
class Taken:
    """What one batch did: due rows taken (0 ends the sweep), counts, and where the next starts."""

    rows: int
    counts: dict[str, int] = field(default_factory=dict)
    cursor: Any = None


# One batch in the caller's transaction: at most `limit` rows, starting after `cursor` (None: the start).
Step = Callable[[AsyncConnection, int, Any], Awaitable[Taken]]


async def sweep_in_transactions(
    engine: AsyncEngine,
    step: Step,
    *,
    settings: Settings,
    keys: Iterable[str],
) -> dict[str, int]:
    """The usual sweep: each batch is ``step`` in a transaction of its own, sized by its time."""
    size = BatchSize.from_settings(settings)
    cursor: Any = None

    async def batch() -> tuple[int, dict[str, int]]:
        nonlocal cursor
        start = time.perf_counter()
        async with engine.begin() as conn:
            taken = await step(conn, size.rows, cursor)
        size.observe(taken.rows, time.perf_counter() - start)
        cursor = taken.cursor
        return taken.rows, taken.counts

    return await sweep(batch, budget_s=settings.sweep_budget_s, keys=keys)


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

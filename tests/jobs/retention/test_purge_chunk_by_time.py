"""The purge on a real table sizes its chunks by how long they take: the clock is injected, so each
chunk "takes" what the test says and the sizes it picks are exact."""

import itertools
import time
from datetime import timedelta

from sqlalchemy import event

from jobs.retention import purge
from jobs.retention.policies import load_policies
from tests.jobs.retention.test_purge import add_events, event_ages_days, with_policies


def ticking(step_s: float):
    """A timer that moves step_s per call: every chunk (two calls) seems to take step_s."""
    counter = itertools.count()
    return lambda: next(counter) * step_s


def delete_windows(engine) -> tuple[list[int], object]:
    """Row windows of the purge's DELETEs, as (upto - after), from their bound parameters."""
    windows: list[int] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("DELETE"):
            after, upto = parameters[0], parameters[1]
            windows.append(upto - after)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    return windows, lambda: event.remove(engine.sync_engine, "before_cursor_execute", record)


async def purge_with_timer(mysql, tmp_path, chunk_size: int, step_s: float):
    policy = load_policies(with_policies(tmp_path, chunk_size=chunk_size))["telemetry.events"]
    windows, stop = delete_windows(mysql)
    try:
        counts = await purge.apply_policy(
            mysql, policy, deadline=time.monotonic() + 600, timer=ticking(step_s)
        )
    finally:
        stop()
    return counts, windows


async def test_slow_chunks_shrink_the_next_ones(mysql, tmp_path):
    await add_events(mysql, [timedelta(days=100)] * 1200 + [timedelta(days=5)] * 3)

    # every chunk "takes" 0.5 s against the shipped 100 ms target: 500 ids, then 500 / 0.5 * 0.08 = 80,
    # then the floor
    counts, windows = await purge_with_timer(mysql, tmp_path, chunk_size=5000, step_s=0.5)

    assert windows[:4] == [500, 80, 50, 50]
    assert sum(windows) == 1200 and counts["deleted"] == 1200 and counts["remaining_expired"] == 0
    assert await event_ages_days(mysql) == [5] * 3


async def test_fast_chunks_grow_up_to_the_policys_chunk_size(mysql, tmp_path):
    await add_events(mysql, [timedelta(days=100)] * 6000)

    counts, windows = await purge_with_timer(mysql, tmp_path, chunk_size=1500, step_s=0.001)

    assert windows == [500, 1000, 1500, 1500, 1500]
    assert counts["deleted"] == 6000 and counts["chunks"] == 5

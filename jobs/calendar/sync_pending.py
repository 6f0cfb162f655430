"""calendar.sync_pending: sync pending rows, and failed rows whose retry time has come.

Rows are taken oldest first in batches and synced a few at a time (``calendar_sweep_concurrency``);
each row goes through the same locked flow as ``calendar.sync_session``, so a sweep racing a queued
job or another sweep syncs every session once. A connection that answers with a retry-worthy
error is left alone for the rest of the run, so an outage or a rate limit is not hammered.
"""

import asyncio
from collections import Counter
from uuid import UUID

from jobfleet.payloads import Sweep
from jobs.calendar import store
from jobs.calendar.sync import SUMMARY_KEYS, Result, sync_one
from jobs.deps import Deps
from jobs.errors import NotFound
from jobs.sweep import sweep


async def run(deps: Deps, payload: Sweep) -> dict[str, int]:
    settings = deps.settings
    taken: set[UUID] = set()
    paused: set[UUID] = set()
    slots = asyncio.Semaphore(settings.calendar_sweep_concurrency)

    async def one(session_id: UUID) -> Result:
        async with slots:
            try:
                result = await sync_one(deps, session_id, paused=paused)
            except NotFound:  # the session was deleted since the batch was read
                return Result("skipped")
        if result.kind == "retrying" and result.connection_id is not None:
            paused.add(result.connection_id)
        return result

    async def batch() -> tuple[int, dict[str, int]]:
        async with deps.pinteach.connect() as conn:
            ids = await store.due_ids(
                conn,
                max_attempts=settings.calendar_max_attempts,
                # each row is an API call, not a row lock: a fixed batch, not one sized by time
                limit=min(settings.sweep_batch_first, settings.sweep_batch_size),
                exclude=taken,
            )
        taken.update(ids)
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(session_id)) for session_id in ids]
        return len(ids), Counter(task.result().kind for task in tasks)

    return await sweep(batch, budget_s=settings.sweep_budget_s, keys=SUMMARY_KEYS)

"""telemetry.purge: apply the retention policies of schedules/retention.toml to Pickatale.

- A policy's due rows are those whose time column(s) are older than its age, measured from the
  database's UTC clock when the policy starts; a delete policy deletes them, an update policy sets
  its ``set_to`` columns.
- Never one giant statement: the purge walks the primary key from the lowest due id to the highest
  in windows of consecutive ids, each window one statement in a short READ COMMITTED transaction
  (record locks on the rows it changes, no gap locks, so inserts at the end of the table never
  wait on it), with a pause between chunks (jobs/retention/chunks.py, shared with the learner
  erasure).
- Each window is sized by time (jobs/retention/chunk_sizer.py): the next chunk takes as many ids as
  the last ones suggest fit in the policy's ``chunk_target_ms``, at most its ``chunk_size``, so a
  chunk's locks last about as long on a cold disk as on a warm cache.
- A time budget per run, checked after each chunk (each policy the run reaches gets at least one
  chunk); what is left is picked up by the next run. A run started while another still holds the
  run lock does nothing.
"""

import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import structlog
from sqlalchemy import ColumnElement, and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from jobfleet.payloads import RetentionRun
from jobs.deps import Deps
from jobs.errors import Permanent
from jobs.retention.chunk_sizer import ChunkSizer
from jobs.retention.chunks import walk_chunks
from jobs.retention.policies import PolicyError, RetentionPolicy, load_policies
from jobs.retention.run_lock import run_lock, run_lock_name

SUMMARY_KEYS = ("deleted", "updated", "remaining_expired", "chunks", "already_running")

log = structlog.get_logger()


async def run(deps: Deps, payload: RetentionRun) -> dict[str, int]:
    policies = chosen_policies(deps.settings.retention_file, payload.policy)
    totals: Counter[str] = Counter(dict.fromkeys(SUMMARY_KEYS, 0))
    deadline = time.monotonic() + deps.settings.retention_budget_s
    async with run_lock(deps.pickatale, run_lock_name(deps.settings.pickatale_db_prefix)) as held:
        if not held:
            log.info("retention_already_running", policy=payload.policy)
            totals["already_running"] = 1
            return dict(totals)
        for policy in policies:
            totals.update(await apply_policy(deps.pickatale, policy, deadline=deadline))
    return dict(totals)


def chosen_policies(path: Path, name: str | None) -> list[RetentionPolicy]:
    try:
        policies = load_policies(path)
    except PolicyError as e:
        raise Permanent(str(e)) from None
    if name is None:
        return list(policies.values())
    if name not in policies:
        raise Permanent(f"unknown retention policy {name!r}; {path} defines {', '.join(policies)}")
    return [policies[name]]


def due(policy: RetentionPolicy, cutoff: datetime) -> ColumnElement[bool]:
    table = policy.sa_table
    times = [table.c[name] for name in policy.time_columns]
    if policy.combine == "any":
        aged = or_(*(column < cutoff for column in times))
    else:
        aged = func.coalesce(*times) < cutoff
    return and_(aged, *(table.c[name] == value for name, value in policy.where.items()))


async def apply_policy(
    engine: AsyncEngine,
    policy: RetentionPolicy,
    *,
    deadline: float,
    timer: Callable[[], float] = time.perf_counter,
) -> Counter[str]:
    table = policy.sa_table
    (pk,) = table.primary_key.columns
    async with engine.connect() as conn:
        now = (await conn.execute(select(func.utc_timestamp()))).scalar_one()
        cutoff = now - policy.max_age
        # Bounds of the walk, found through the time column's index where the table has one.
        lowest, highest = (
            await conn.execute(select(func.min(pk), func.max(pk)).where(due(policy, cutoff)))
        ).one()

    chunks = changed = 0
    sizer = ChunkSizer(policy.chunk_size, policy.chunk_target_ms / 1000)
    longest_s = 0.0
    if lowest is not None:
        statement = delete(table) if policy.action == "delete" else update(table).values(policy.set_to)
        # At least one chunk even with the budget spent, as in jobs.sweep: every run moves on.
        walked = await walk_chunks(
            engine,
            table,
            statement,
            where=due(policy, cutoff),
            sizer=sizer,
            pause_s=policy.pause_between_chunks_s,
            deadline=deadline,
            after=lowest - 1,
            highest=highest,
            timer=timer,
        )
        chunks, changed, longest_s = walked.chunks, walked.changed, walked.longest_s

    async with engine.connect() as conn:
        remaining = (
            await conn.execute(select(func.count()).select_from(table).where(due(policy, cutoff)))
        ).scalar_one()
    log.info(
        "retention_policy_applied",
        policy=policy.name,
        action=policy.action,
        changed=changed,
        chunks=chunks,
        longest_chunk_ms=round(longest_s * 1000, 1),
        last_chunk_size=sizer.size,
        remaining_expired=remaining,
    )
    counted = "deleted" if policy.action == "delete" else "updated"
    return Counter({counted: changed, "chunks": chunks, "remaining_expired": remaining})

"""A backend for the outbox chaos tests: small transactions that write outbox rows through
``Producer.enqueue_in_transaction``, four in five committed, the rest rolled back, whatever happens
to the servers; and the check that every committed row became exactly one job.

A row counts as committed only when COMMIT returned; a transaction that failed before COMMIT never
committed. A COMMIT that failed (the server went away while it ran) may or may not have committed:
those rows are ``unknown``, and may each become one job or none.
"""

import asyncio
import random
import time
from dataclasses import dataclass, field

import asyncpg
from redis.asyncio import Redis

from db.engines import libpq_dsn
from jobfleet import keys
from jobfleet.producer import Producer
from workers.history import member
from workers.outbox.listener import LISTEN_ERRORS as ERRORS

JOB = "fleet.noop"


@dataclass
class Backend:
    dsn: str
    redis: Redis
    committed: list[str] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    errors: int = 0

    async def run(self, stop: asyncio.Event, rate_tx_per_s: float = 100, max_rows: int = 5) -> None:
        producer = Producer(self.redis)  # writes only to PostgreSQL here
        conn: asyncpg.Connection | None = None
        rng = random.Random(11)
        while not stop.is_set():
            await asyncio.sleep(rng.expovariate(rate_tx_per_s))
            ids: list[str] = []
            committing = False
            try:
                if conn is None or conn.is_closed():
                    conn = await asyncpg.connect(libpq_dsn(self.dsn), timeout=5)
                tx = conn.transaction()
                await tx.start()
                for _ in range(rng.randint(1, max_rows)):
                    ids.append(await producer.enqueue_in_transaction(conn, JOB))
                if rng.random() < 0.8:
                    committing = True
                    await tx.commit()
                    self.committed += ids
                else:
                    await tx.rollback()
                    self.rolled_back += ids
            except ERRORS:
                self.errors += 1
                (self.unknown if committing else self.rolled_back).extend(ids)
                if conn is not None:
                    conn.terminate()
                conn = None
                await asyncio.sleep(0.1)
        if conn is not None:
            await conn.close()


async def landed(redis: Redis, job_ids: list[str]) -> list[bool]:
    """Which of the jobs exist: queued or running (their job key), or finished (the history index,
    which outlives results). A job whose worker lost Redis while running it waits for its
    in-progress key to expire before it runs again (minutes): it exists all the same."""
    found = []
    for start in range(0, len(job_ids), 1000):
        chunk = job_ids[start : start + 1000]
        async with redis.pipeline(transaction=False) as pipe:
            pipe.zmscore(keys.HISTORY_INDEX, [member("succeeded", JOB, j) for j in chunk])
            for job_id in chunk:
                pipe.exists(keys.job_key_prefix + job_id)
            finished, *queued = await pipe.execute()
        found += [f is not None or bool(q) for f, q in zip(finished, queued, strict=True)]
    return found


async def _where(redis: Redis, job_ids: list[str]) -> dict[str, dict]:
    """What Redis holds of each job: for the message of a failed check."""
    found = {}
    for job_id in job_ids:
        found[job_id] = {
            "job": await redis.exists(keys.job_key_prefix + job_id),
            "in_progress": await redis.exists(keys.in_progress_key_prefix + job_id),
            "result": await redis.exists(keys.result_key_prefix + job_id),
            "queued_at": await redis.zscore(keys.QUEUE_DEFAULT, job_id),
        }
    return found


async def exactly_once(redis: Redis, backend: Backend, outbox_size, timeout_s: float = 120) -> dict:
    """Wait until the outbox is empty and every committed row has its job; then check that no
    row was enqueued twice and none of a rolled back transaction at all. Returns the relay's counts."""
    assert backend.committed, "the backend committed nothing: the test proved nothing"
    deadline = time.monotonic() + timeout_s
    while await outbox_size() or not all(await landed(redis, backend.committed)):
        if time.monotonic() > deadline:
            missing = [
                j
                for j, done in zip(backend.committed, await landed(redis, backend.committed), strict=True)
                if not done
            ]
            raise AssertionError(
                f"{await outbox_size()} rows still in the outbox, {len(missing)} committed rows have no job "
                f"after {timeout_s} s, e.g. {await _where(redis, missing[:3])}"
            )
        await asyncio.sleep(0.2)
    ghosts = []
    for job_id in backend.rolled_back:
        if (
            await redis.exists(
                keys.job_key_prefix + job_id,
                keys.result_key_prefix + job_id,
                keys.in_progress_key_prefix + job_id,
            )
            or (await landed(redis, [job_id]))[0]
        ):
            ghosts.append(job_id)
    assert not ghosts, f"rows of rolled back transactions became jobs: {ghosts[:5]}"
    unknown_landed = sum(await landed(redis, backend.unknown)) if backend.unknown else 0
    counts = {k.decode(): int(v) for k, v in (await redis.hgetall(keys.OUTBOX_STATS)).items()}
    assert counts.get("enqueued", 0) == len(backend.committed) + unknown_landed, (
        counts,
        len(backend.committed),
        unknown_landed,
    )
    assert not counts.get("duplicate") and not counts.get("failed"), counts
    assert await redis.zcard(keys.FAILED_INDEX) == 0
    return counts

"""The outbox relay: every worker process runs one, beside the scheduler.

It wakes on a notification (``listener.py``) or every ``sweep_s`` and drains the outbox: each batch
is one transaction that claims and deletes up to ``batch_size`` rows (``claim.py``), one Redis call
that creates their jobs (``push.py``), and the commit. Redis first, commit second: a relay that
dies in between leaves the rows to be claimed again, and their markers in Redis make that second
pass add nothing. Several relays share the work through ``FOR UPDATE SKIP LOCKED``. PostgreSQL or
Redis away: the batch rolls back, the relay says so and tries again with backoff.
"""

import asyncio
import contextlib
import os
import time
from collections import Counter
from typing import Self

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from db.engines import libpq_dsn, pinteach_engine
from db.pinteach import job_outbox
from db.schema import missing_table
from jobfleet.producer import NotReplicated
from jobfleet.settings import Settings
from workers.outbox.claim import claim_batch
from workers.outbox.listener import LISTEN_ERRORS, OutboxListener, one_line
from workers.outbox.push import Pusher

log = structlog.get_logger("jobfleet.outbox")

# PostgreSQL ends a relay transaction left idle this long (its relay vanished), releasing its rows
# to the next relay; Redis calls time out sooner. Both far inside push.RELAYED_MARKER_TTL_S.
IDLE_IN_TRANSACTION_S = 60
REDIS_TIMEOUT_S = 15
# after a failed round: 0.5 s, doubling to 10 s (a long sweep period must not slow the recovery)
FIRST_BACKOFF_S, MAX_BACKOFF_S = 0.5, 10


class OutboxRelay:
    def __init__(
        self,
        dsn: str,
        redis: Redis,
        *,
        batch_size: int = 500,
        sweep_s: float = 1.0,
        listen: bool = True,
        durable_replicas: int = 0,
        durable_timeout_s: float = 1.0,
    ) -> None:
        self.engine = pinteach_engine(
            dsn,
            pool_size=1,
            server_settings={
                # which process holds outbox rows, in pg_stat_activity
                "application_name": f"jobfleet-outbox:{os.getpid()}",
                "idle_in_transaction_session_timeout": str(IDLE_IN_TRANSACTION_S * 1000),
            },
        )
        self.pusher = Pusher(redis, durable_replicas=durable_replicas, durable_timeout_s=durable_timeout_s)
        self.batch_size = batch_size
        self.sweep_s = sweep_s
        self.wake = asyncio.Event()
        self.listener = OutboxListener(libpq_dsn(dsn), self.wake) if listen else None
        self.claim = claim_batch()
        self.totals: Counter[str] = Counter()
        self._conn: AsyncConnection | None = None

    @classmethod
    def from_settings(cls, settings: Settings, redis: Redis) -> Self:
        return cls(
            settings.pinteach_dsn,
            redis,
            batch_size=settings.outbox_batch_size,
            sweep_s=settings.outbox_sweep_s,
            listen=settings.outbox_listen,
            durable_replicas=settings.redis_durable_replicas,
            durable_timeout_s=settings.redis_durable_timeout_s,
        )

    async def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None
        await self.engine.dispose()

    async def run(self) -> None:
        """Relay until cancelled; where the outbox table is missing, say so once and stay off."""
        try:
            if not await self._table_present():
                return
            log.info(
                "outbox_relay_started",
                batch_size=self.batch_size,
                sweep_s=self.sweep_s,
                listen=self.listener is not None,
            )
            listening = asyncio.create_task(self.listener.run()) if self.listener else None
            try:
                await self._loop()
            finally:
                if listening:
                    listening.cancel()
                    await asyncio.gather(listening, return_exceptions=True)
        finally:
            await self.close()

    async def _table_present(self) -> bool:
        delay_s = FIRST_BACKOFF_S
        while True:
            try:
                async with self.engine.connect() as conn:
                    reason = await missing_table(conn, job_outbox)
            except (SQLAlchemyError, *LISTEN_ERRORS) as e:
                log.warning("outbox_relay_database_unavailable", error=one_line(e), retry_in_s=delay_s)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, MAX_BACKOFF_S)
                continue
            if reason:
                log.warning("outbox_relay_off", reason=reason)
            return reason is None

    async def _loop(self) -> None:
        delay_s = FIRST_BACKOFF_S
        next_sweep_at = time.monotonic() + self.sweep_s
        while True:
            try:
                await self.drain()
            except (RedisError, NotReplicated, SQLAlchemyError, *LISTEN_ERRORS) as e:
                cause = "redis" if isinstance(e, RedisError | NotReplicated) else "database"
                log.warning("outbox_relay_retrying", cause=cause, error=one_line(e), retry_in_s=delay_s)
            except Exception as e:
                # a bug must not stop the relay (nor the worker around it): its rows stay in the
                # outbox, and the next round tries again
                log.error("outbox_relay_error", error=one_line(e), retry_in_s=delay_s, exc_info=True)
            else:
                delay_s = FIRST_BACKOFF_S
                next_sweep_at = await self._wait(next_sweep_at)
                continue
            await asyncio.sleep(delay_s)  # then straight on: the rows are still there
            delay_s = min(delay_s * 2, MAX_BACKOFF_S)

    async def _wait(self, next_sweep_at: float) -> float:
        """Until a notification or the next sweep, whichever comes first; sweeps keep their own
        cadence (every ``sweep_s``), so a row whose notification was lost waits one period at most."""
        try:
            async with asyncio.timeout(max(next_sweep_at - time.monotonic(), 0)):
                await self.wake.wait()
        except TimeoutError:
            next_sweep_at += self.sweep_s
        return max(next_sweep_at, time.monotonic())

    async def drain(self) -> Counter[str]:
        """Relay batches until one comes back short; the counts of this drain. The relay keeps its
        connection between drains (a wake-up costs no pool checkout); a failure replaces it."""
        if self._conn is None:
            self._conn = await self.engine.connect()
        conn = self._conn
        counts: Counter[str] = Counter()
        try:
            while True:
                self.wake.clear()  # a commit from here on wakes the next drain
                rows, batch = await self.relay_batch(conn)
                counts += batch
                if rows < self.batch_size:
                    return counts
        except BaseException:
            self._conn = None
            with contextlib.suppress(Exception):
                await conn.invalidate()
            raise

    async def relay_batch(self, conn: AsyncConnection) -> tuple[int, Counter[str]]:
        """One transaction: claim and delete a batch, create its jobs in Redis, commit."""
        async with conn.begin():
            rows = (await conn.execute(self.claim, {"batch": self.batch_size})).all()
            if not rows:
                return 0, Counter()
            async with asyncio.timeout(REDIS_TIMEOUT_S):
                counts, batch = await self.pusher.push(rows)
        self.pusher.committed(batch)
        self.totals += counts
        for failure in batch.failures:
            log.error(
                "outbox_row_failed", job=failure["job"], job_id=failure["job_id"], error=failure["error"]
            )
        if counts["relayed_before"] or counts["duplicate"]:
            log.info("outbox_rows_already_enqueued", **counts)
        log.debug("outbox_batch_relayed", rows=len(rows), **counts)
        return len(rows), counts

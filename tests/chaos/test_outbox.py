"""The outbox relay under faults, while a backend keeps committing and rolling back: relays killed
with SIGKILL in the middle of a batch, PostgreSQL restarted, Redis away for half a minute. Every
committed row becomes exactly one job once things are back; no row of a rolled back transaction
ever does.

Sizes: ``JOBFLEET_CHAOS_OUTBOX_S`` (15) seconds of killing, ``JOBFLEET_CHAOS_OUTBOX_REDIS_AWAY_S``
(30) seconds without Redis.
"""

import asyncio
import itertools
import os
import random
import signal
import time
from pathlib import Path

import asyncpg
import pytest
from redis.asyncio import Redis

from db.engines import libpq_dsn, pinteach_engine
from db.schema import create_pinteach
from tests.chaos.outbox_backend import Backend, exactly_once
from tests.chaos.processes import log_events, start_worker, stop_worker
from tests.chaos.servers import PrivatePostgres, PrivateRedis, stopped

KILL_S = float(os.environ.get("JOBFLEET_CHAOS_OUTBOX_S", "15"))
REDIS_AWAY_S = float(os.environ.get("JOBFLEET_CHAOS_OUTBOX_REDIS_AWAY_S", "30"))

pytestmark = pytest.mark.slow


def outbox_size(dsn: str):
    async def size() -> int:
        try:
            conn = await asyncpg.connect(libpq_dsn(dsn), timeout=5)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return -1  # not answering yet: not empty
        try:
            return await conn.fetchval("SELECT count(*) FROM job_outbox")
        finally:
            await conn.close()

    return size


async def logged(log: Path, event: str, times: int = 1, timeout_s: float = 60) -> None:
    """Wait until the worker has logged ``event`` ``times`` times."""
    deadline = time.monotonic() + timeout_s
    while [e["event"] for e in log_events(log)].count(event) < times:
        assert time.monotonic() < deadline, f"no {event} x{times} in {log.name} within {timeout_s} s"
        await asyncio.sleep(0.1)


async def mid_batch(admin: asyncpg.Connection, pid: int) -> bool:
    """The relay process holds claimed (deleted, uncommitted) rows: it is between its claim and its
    commit, with its Redis call sent or about to be."""
    return bool(
        await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 "
            "AND state = 'idle in transaction' AND query LIKE 'DELETE FROM job_outbox%'",
            f"jobfleet-outbox:{pid}",
        )
    )


async def sigkill_while_blocked_in_redis(redis: Redis, admin: asyncpg.Connection, victim) -> bool:
    """Hold Redis writes (CLIENT PAUSE, on the test's private server) until the relay has claimed a
    batch and sent its script, then SIGKILL it: a kill between the claim and the commit, for sure."""
    await redis.execute_command("CLIENT", "PAUSE", 3000, "WRITE")
    try:
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            if await mid_batch(admin, victim.pid):
                victim.kill()
                await victim.wait()
                return True
            await asyncio.sleep(0.01)
        return False
    finally:
        await redis.execute_command("CLIENT", "UNPAUSE")


async def sigkill_at_random(admin: asyncpg.Connection, victim, rng: random.Random) -> bool | None:
    """SIGSTOP the relay wherever it is; SIGKILL it if that was inside a batch (after its script
    ran, as often as not), now and then anywhere; else let it go on. None: not killed."""
    os.kill(victim.pid, signal.SIGSTOP)
    inside = await mid_batch(admin, victim.pid)
    if inside or rng.random() < 0.05:
        victim.kill()  # SIGKILL, stopped or not
        await victim.wait()
        return inside
    os.kill(victim.pid, signal.SIGCONT)
    return None


async def test_relays_killed_mid_batch_lose_nothing_and_double_nothing(pg, env, settings, tmp_path):
    with PrivateRedis() as server:
        # jobs run in a worker that is never killed; the relays run in worker processes of their own
        env = {**env, "JOBFLEET_REDIS_URL": server.url()}
        runner_env = {**env, "JOBFLEET_OUTBOX_RELAY_ENABLED": "false", "JOBFLEET_LOG_LEVEL": "INFO"}
        runner = await start_worker(runner_env, tmp_path / "runner.log", "default")
        logs: dict[int, Path] = {runner.pid: tmp_path / "runner.log"}  # by pid
        relay_env = {**env, "JOBFLEET_OUTBOX_BATCH_SIZE": "100", "JOBFLEET_LOG_LEVEL": "INFO"}

        async def relay() -> asyncio.subprocess.Process:
            log = tmp_path / f"relay-{len(logs)}.log"
            process = await start_worker(relay_env, log, "calendar")
            logs[process.pid] = log
            return process

        relays = [await relay(), await relay()]
        redis = Redis.from_url(server.url())
        backend = Backend(settings.pinteach_dsn, redis)
        stop = asyncio.Event()
        inserting = asyncio.create_task(backend.run(stop, rate_tx_per_s=100, max_rows=10))
        admin = await asyncpg.connect(libpq_dsn(settings.pinteach_dsn))
        rng = random.Random(7)
        kills = {"blocked in Redis": 0, "inside a batch": 0, "anywhere": 0}
        try:
            end = time.monotonic() + KILL_S
            for round_ in itertools.count():
                if time.monotonic() > end:
                    break
                i = rng.randrange(len(relays))
                if round_ % 10 == 0:
                    killed = await sigkill_while_blocked_in_redis(redis, admin, relays[i])
                    kills["blocked in Redis"] += killed
                else:
                    inside = await sigkill_at_random(admin, relays[i], rng)
                    killed = inside is not None
                    if killed:
                        kills["inside a batch" if inside else "anywhere"] += 1
                if killed:
                    relays[i] = await relay()
                    await asyncio.sleep(rng.uniform(0.1, 0.5))
                else:
                    await asyncio.sleep(rng.uniform(0.01, 0.05))
            stop.set()
            await inserting
            counts = await exactly_once(redis, backend, outbox_size(settings.pinteach_dsn))
            # A relay started in the last rounds may still be importing (seconds on a busy
            # machine): SIGTERM before its fleet has installed its handler kills it (exit -15),
            # which loses nothing (it holds no rows yet) but is not the clean stop checked below.
            for process in [*relays, runner]:
                await logged(logs[process.pid], "fleet_started")
        finally:
            stop.set()
            await admin.close()
            for process in relays:
                if process.returncode is None:
                    os.kill(process.pid, signal.SIGCONT)
            codes = [await stop_worker(p) for p in [*relays, runner]]
            inserting.cancel()
            await redis.aclose()
    assert codes == [0] * len(codes), [logs[p.pid].name for p in [*relays, runner]]
    assert kills["blocked in Redis"] >= 1 and len(backend.committed) > 100, (kills, len(backend.committed))
    print(f"kills={kills} committed={len(backend.committed)} counts={counts}")


async def test_postgres_restarts_lose_nothing_and_the_listener_comes_back(redis, env, tmp_path):
    log = tmp_path / "worker.log"
    with PrivatePostgres() as server:
        admin = await asyncpg.connect(server.admin_dsn())
        await admin.execute("CREATE DATABASE pinteach")
        await admin.close()
        dsn = server.admin_dsn("pinteach")
        engine = pinteach_engine(dsn, pool_size=1)
        await create_pinteach(engine)
        await engine.dispose()
        # a sweep period longer than the test: rows after a restart flow only if LISTEN is back
        worker = await start_worker(
            {
                **env,
                "JOBFLEET_PINTEACH_DSN": dsn,
                "JOBFLEET_OUTBOX_SWEEP_S": "120",
                "JOBFLEET_LOG_LEVEL": "INFO",
            },
            log,
            "default",
        )
        backend = Backend(dsn, redis)
        stop = asyncio.Event()
        inserting = asyncio.create_task(backend.run(stop, rate_tx_per_s=50))
        try:
            await logged(log, "outbox_listening")
            for _ in range(3):
                await asyncio.sleep(3)
                await asyncio.to_thread(server.restart)  # pg_ctl waits; the loop must not
            await asyncio.sleep(3)
            stop.set()
            await inserting
            await exactly_once(redis, backend, outbox_size(dsn), timeout_s=60)
        finally:
            stop.set()
            code = await stop_worker(worker)
    assert code == 0, log.read_text()[-3000:]
    assert backend.errors >= 3, "the backend saw the restarts"
    events = [e["event"] for e in log_events(log)]
    assert events.count("outbox_listening") >= 4, "LISTEN came back after each restart"


async def test_redis_away_for_half_a_minute_loses_nothing(pg, env, settings, tmp_path):
    log = tmp_path / "worker.log"
    with PrivateRedis() as server:
        worker = await start_worker(
            {**env, "JOBFLEET_REDIS_URL": server.url(), "JOBFLEET_LOG_LEVEL": "INFO"}, log, "default"
        )
        redis = Redis.from_url(server.url())
        backend = Backend(settings.pinteach_dsn, redis)
        stop = asyncio.Event()
        inserting = asyncio.create_task(backend.run(stop, rate_tx_per_s=50))
        size = outbox_size(settings.pinteach_dsn)
        try:
            await asyncio.sleep(3)
            with stopped(server):
                await asyncio.sleep(REDIS_AWAY_S)
                waiting = await size()
                assert worker.returncode is None, "the worker outlives Redis going away"
            await asyncio.sleep(3)
            stop.set()
            await inserting
            await exactly_once(redis, backend, size)
        finally:
            stop.set()
            code = await stop_worker(worker)
            await redis.aclose()
    assert code == 0, log.read_text()[-3000:]
    assert waiting > 0, "rows waited in the outbox while Redis was away"
    retries = [e for e in log_events(log) if e["event"] == "outbox_relay_retrying"]
    assert retries and all(e["cause"] == "redis" for e in retries)

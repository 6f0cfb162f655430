"""Kill -9 workers at random moments during a large auto-complete sweep, let the fleet finish, and
compare the database row for row with a clean run of the same sweep on a copy of the same data."""

import asyncio
import os
import random
import signal
import sys

import asyncpg
import pytest

from jobfleet.producer import Producer
from jobfleet.settings import Settings
from jobs.deps import Deps
from ops.audit import audit_pinteach
from tests import services
from tests.chaos.sessions_world import SEED, SNAPSHOT, progress, snapshot

SESSIONS = int(os.environ.get("JOBFLEET_CHAOS_SESSIONS", "20000"))
MIN_KILLS = 10


@pytest.mark.slow
async def test_kill_9_during_a_sweep_then_finish_equals_a_clean_run(settings: Settings, env, deps, pg, redis):
    students = SESSIONS // 10
    async with pg.begin() as conn:
        raw = await conn.get_raw_connection()
        await raw.driver_connection.execute(SEED.format(students=students))
    await deps.pinteach.dispose()  # the template copy needs the source database idle

    clean_name = f"jf_test_{services.RUN_ID}_clean"
    admin = await asyncpg.connect(services.PG_ADMIN_DSN)
    await admin.execute(
        f'CREATE DATABASE "{clean_name}" TEMPLATE "{settings.pinteach_dsn.rsplit("/", 1)[1]}"'
    )
    clean_dsn = services.PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + clean_name
    try:
        # the reference: one uninterrupted sweep over the same rows
        clean = Deps.from_settings(settings.model_copy(update={"pinteach_dsn": clean_dsn}))
        from jobfleet.payloads import Sweep
        from jobs.sessions import auto_complete

        reference = await auto_complete.run(clean, Sweep())
        await clean.close()

        worker_env = {**env, "JOBFLEET_SWEEP_BATCH_SIZE": "50", "JOBFLEET_LOG_LEVEL": "WARNING"}
        command = [sys.executable, "-m", "cli", "worker", "--queue", "sweeps", "--no-scheduler"]
        producer = Producer(redis)
        kills, done = 0, 0
        rng = random.Random(20261122)
        while kills < MIN_KILLS:
            worker = await asyncio.create_subprocess_exec(
                *command, env=worker_env, stdout=asyncio.subprocess.DEVNULL
            )
            await producer.enqueue("sessions.auto_complete", key=f"chaos-{kills}")
            before = done
            while (done := await progress(settings.pinteach_dsn)) == before and worker.returncode is None:
                await asyncio.sleep(0.02)
            await asyncio.sleep(rng.uniform(0, 0.25))
            worker.send_signal(signal.SIGKILL)
            await worker.wait()
            kills += 1
            assert done < SESSIONS, "the sweep finished before enough kills: raise JOBFLEET_CHAOS_SESSIONS"

        # the fleet goes on: a fresh worker takes the next tick and finishes
        worker = await asyncio.create_subprocess_exec(
            *command, env=worker_env, stdout=asyncio.subprocess.DEVNULL
        )
        await producer.enqueue("sessions.auto_complete", key="chaos-final")
        try:
            for _ in range(600):
                if await progress(settings.pinteach_dsn) == await progress(clean_dsn):
                    break
                await asyncio.sleep(0.1)
        finally:
            worker.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(worker.wait(), 60) == 0

        chaos, expected = await snapshot(settings.pinteach_dsn), await snapshot(clean_dsn)
        assert reference["completed"] + reference["pending_review"] == SESSIONS + 25
        for table in SNAPSHOT:
            assert chaos[table] == expected[table], f"{table} differs from the clean run after {kills} kills"
        assert await audit_pinteach(deps.pinteach) == []
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{clean_name}" WITH (FORCE)')
        await admin.close()

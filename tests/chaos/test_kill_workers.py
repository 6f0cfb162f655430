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

SESSIONS = int(os.environ.get("JOBFLEET_CHAOS_SESSIONS", "20000"))
MIN_KILLS = 10

SEED = """
INSERT INTO teachers (id, email, name, slug, timezone, completion_mode)
VALUES ('00000000-0000-0000-0000-00000000000a', 'auto@t.test', 'Auto', 'auto', 'UTC', 'AUTO_COMPLETE'),
       ('00000000-0000-0000-0000-00000000000b', 'manual@t.test', 'Manual', 'manual', 'UTC', 'MANUAL');
INSERT INTO services (id, teacher_id, name, slug, delivery_mode, group_type, structure, pricing_model)
VALUES ('00000000-0000-0000-0000-0000000000a1', '00000000-0000-0000-0000-00000000000a', 'S', 's', 'live',
        'individual', 'package', 'credits'),
       ('00000000-0000-0000-0000-0000000000a2', '00000000-0000-0000-0000-00000000000a', 'G', 'g', 'live',
        'group', 'course', 'credits'),
       ('00000000-0000-0000-0000-0000000000b1', '00000000-0000-0000-0000-00000000000b', 'M', 'm', 'live',
        'individual', 'package', 'credits');
-- {students} students with 10 due individual sessions each, on the auto teacher (every 10th on manual)
INSERT INTO students (id, teacher_id, email, name, timezone)
SELECT md5('student' || i)::uuid, CASE WHEN i % 10 = 0 THEN '00000000-0000-0000-0000-00000000000b'::uuid
       ELSE '00000000-0000-0000-0000-00000000000a'::uuid END, 's' || i || '@t.test', 'S' || i, 'UTC'
FROM generate_series(1, {students}) i;
INSERT INTO enrollments (id, service_id, student_id, teacher_id, status, sessions_total, sessions_scheduled,
                         valid_from, valid_until)
SELECT md5('enrollment' || i)::uuid,
       CASE WHEN i % 10 = 0 THEN '00000000-0000-0000-0000-0000000000b1'::uuid
       ELSE '00000000-0000-0000-0000-0000000000a1'::uuid END,
       md5('student' || i)::uuid, s.teacher_id, 'active', 10 + i % 3, 10, now() - interval '30 days',
       now() + interval '30 days'
FROM generate_series(1, {students}) i JOIN students s ON s.id = md5('student' || i)::uuid;
INSERT INTO class_sessions (id, enrollment_id, service_id, teacher_id, student_id, starts_at, ends_at, timezone,
                            status, is_trial_session)
SELECT md5('session' || i || ':' || k)::uuid, e.id, e.service_id, e.teacher_id, e.student_id,
       now() - interval '2 hours' - k * interval '1 hour', now() - interval '1 hour' - k * interval '1 hour',
       'UTC', 'scheduled', k = 1 AND i % 7 = 0
FROM generate_series(1, {students}) i CROSS JOIN generate_series(1, 10) k
JOIN enrollments e ON e.id = md5('enrollment' || i)::uuid;
-- group sessions on the auto teacher: 4 participants from the first students, one of them cancelled
INSERT INTO enrollments (id, service_id, student_id, teacher_id, status, sessions_total, sessions_scheduled,
                         valid_from)
SELECT md5('genrollment' || i)::uuid, '00000000-0000-0000-0000-0000000000a2', md5('student' || i)::uuid,
       '00000000-0000-0000-0000-00000000000a', 'active', 50, CASE WHEN i = 4 THEN 0 ELSE 25 END,
       now() - interval '30 days'
FROM generate_series(1, 5) i;
INSERT INTO class_sessions (id, service_id, teacher_id, starts_at, ends_at, timezone, status)
SELECT md5('group' || g)::uuid, '00000000-0000-0000-0000-0000000000a2', '00000000-0000-0000-0000-00000000000a',
       now() - interval '3 hours' - g * interval '1 minute', now() - interval '2 hours' - g * interval '1 minute',
       'UTC', 'scheduled'
FROM generate_series(1, 25) g;
INSERT INTO session_participants (session_id, student_id, enrollment_id, status)
SELECT md5('group' || g)::uuid, md5('student' || i)::uuid, md5('genrollment' || i)::uuid,
       (CASE WHEN i = 4 THEN 'cancelled' ELSE 'confirmed' END)::participant_status
FROM generate_series(1, 25) g CROSS JOIN generate_series(1, 5) i;
"""

# what must match row for row (generated ids and wall-clock times aside)
SNAPSHOT = {
    "sessions": "SELECT id, status, completed_at IS NOT NULL FROM class_sessions ORDER BY id",
    "participants": "SELECT session_id, student_id, status FROM session_participants ORDER BY 1, 2",
    "enrollments": "SELECT id, status, sessions_scheduled, sessions_completed, sessions_forfeited FROM enrollments"
    " ORDER BY id",
    "ledger": "SELECT enrollment_id, session_id, student_id, action, amount, actor, idempotency_key FROM credit_ledger"
    " ORDER BY idempotency_key",
    "lifecycle": "SELECT student_id, event_type, metadata->>'session_id' FROM student_lifecycle_events ORDER BY 1, 2, 3",
    "audit": "SELECT entity_id, action, entity_type, actor_type FROM audit_logs ORDER BY 1",
    "notifications": "SELECT teacher_id, type, payload->>'session_id' FROM notifications ORDER BY 3",
}


async def snapshot(dsn: str) -> dict[str, list]:
    conn = await asyncpg.connect(dsn)
    try:
        return {name: [tuple(r) for r in await conn.fetch(sql)] for name, sql in SNAPSHOT.items()}
    finally:
        await conn.close()


async def progress(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval("SELECT count(*) FROM class_sessions WHERE completed_at IS NOT NULL")
    finally:
        await conn.close()


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
        command = [sys.executable, "-m", "workers", "worker", "--queue", "sweeps", "--no-scheduler"]
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

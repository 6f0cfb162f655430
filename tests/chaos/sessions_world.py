"""A world of due sessions for the chaos tests of sessions.auto_complete: teachers in both completion
modes, individual sessions with their enrollments, group sessions with participants (one cancelled),
and the queries that compare two databases row for row or look for a half-done batch."""

import asyncpg

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


# One statement, so one snapshot: a completed session lacking any of the writes of its batch, or a
# group session still holding a confirmed participant, is a half-done batch.
HALF_DONE = """
SELECT s.id FROM class_sessions s
WHERE s.status = 'completed' AND s.student_id IS NOT NULL AND (
      NOT EXISTS (SELECT 1 FROM credit_ledger l WHERE l.session_id = s.id AND l.action = 'CONSUME')
   OR NOT EXISTS (SELECT 1 FROM student_lifecycle_events e
                  WHERE e.student_id = s.student_id AND e.metadata->>'session_id' = s.id::text)
   OR NOT EXISTS (SELECT 1 FROM audit_logs a WHERE a.entity_id = s.id))
UNION ALL
SELECT s.id FROM class_sessions s JOIN session_participants p ON p.session_id = s.id
WHERE s.status = 'completed' AND s.student_id IS NULL AND (
      p.status = 'confirmed'
   OR (p.status = 'attended' AND NOT EXISTS (
          SELECT 1 FROM credit_ledger l WHERE l.session_id = s.id AND l.student_id = p.student_id)))
UNION ALL
SELECT s.id FROM class_sessions s
WHERE s.status = 'pending_review'
  AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.payload->>'session_id' = s.id::text)
"""


async def half_done(dsn: str) -> list:
    conn = await asyncpg.connect(dsn)
    try:
        return [r[0] for r in await conn.fetch(HALF_DONE)]
    finally:
        await conn.close()

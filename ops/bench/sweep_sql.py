"""SQL of the sweep benchmark: the data set, built set-based, and the hand-written reference."""

# {students} students with one enrollment and 10 due individual sessions each (every 10th student on
# a teacher in MANUAL mode, every 7th has a trial first session); {other} further sessions per
# student that are not due: four in five completed in the past, one in five scheduled in the future.
# Group sessions: {groups} due ones with 5 participants, one of them cancelled.
DATA = """
INSERT INTO teachers (id, email, name, slug, timezone, completion_mode)
VALUES ('00000000-0000-0000-0000-00000000000a', 'auto@bench.test', 'Auto', 'auto', 'UTC', 'AUTO_COMPLETE'),
       ('00000000-0000-0000-0000-00000000000b', 'manual@bench.test', 'Manual', 'manual', 'UTC', 'MANUAL');
INSERT INTO services (id, teacher_id, name, slug, delivery_mode, group_type, structure, pricing_model)
VALUES ('00000000-0000-0000-0000-0000000000a1', '00000000-0000-0000-0000-00000000000a', 'S', 's', 'live',
        'individual', 'package', 'credits'),
       ('00000000-0000-0000-0000-0000000000a2', '00000000-0000-0000-0000-00000000000a', 'G', 'g', 'live',
        'group', 'course', 'credits'),
       ('00000000-0000-0000-0000-0000000000b1', '00000000-0000-0000-0000-00000000000b', 'M', 'm', 'live',
        'individual', 'package', 'credits');
INSERT INTO students (id, teacher_id, email, name, timezone)
SELECT md5('student' || i)::uuid, CASE WHEN i % 10 = 0 THEN '00000000-0000-0000-0000-00000000000b'::uuid
       ELSE '00000000-0000-0000-0000-00000000000a'::uuid END, 's' || i || '@bench.test', 'S' || i, 'UTC'
FROM generate_series(1, {students}) i;
INSERT INTO enrollments (id, service_id, student_id, teacher_id, status, sessions_total, sessions_scheduled,
                         valid_from, valid_until)
SELECT md5('enrollment' || i)::uuid,
       CASE WHEN i % 10 = 0 THEN '00000000-0000-0000-0000-0000000000b1'::uuid
       ELSE '00000000-0000-0000-0000-0000000000a1'::uuid END,
       md5('student' || i)::uuid,
       CASE WHEN i % 10 = 0 THEN '00000000-0000-0000-0000-00000000000b'::uuid
       ELSE '00000000-0000-0000-0000-00000000000a'::uuid END,
       'active', 10 + i % 3, 10, now() - interval '400 days', now() + interval '30 days'
FROM generate_series(1, {students}) i;
INSERT INTO class_sessions (enrollment_id, service_id, teacher_id, student_id, starts_at, ends_at, timezone,
                            status, is_trial_session)
SELECT e.id, e.service_id, e.teacher_id, e.student_id,
       now() - interval '2 hours' - (i * 10 + k) * interval '1 second',
       now() - interval '1 hour' - (i * 10 + k) * interval '1 second', 'UTC', 'scheduled', k = 1 AND i % 7 = 0
FROM generate_series(1, {students}) i CROSS JOIN generate_series(1, 10) k
JOIN enrollments e ON e.id = md5('enrollment' || i)::uuid;
INSERT INTO class_sessions (enrollment_id, service_id, teacher_id, student_id, starts_at, ends_at, timezone,
                            status, completed_at)
SELECT e.id, e.service_id, e.teacher_id, e.student_id, t.at - interval '1 hour', t.at, 'UTC',
       CASE WHEN k % 5 = 0 THEN 'scheduled' ELSE 'completed' END::session_status,
       CASE WHEN k % 5 = 0 THEN NULL ELSE t.at END
FROM generate_series(1, {students}) i CROSS JOIN generate_series(1, {other}) k
JOIN enrollments e ON e.id = md5('enrollment' || i)::uuid
CROSS JOIN LATERAL (SELECT CASE WHEN k % 5 = 0 THEN now() + k * interval '1 hour'
                                ELSE now() - interval '1 day' - k * interval '1 hour' END AS at) t;
INSERT INTO enrollments (id, service_id, student_id, teacher_id, status, sessions_total, sessions_scheduled,
                         valid_from)
SELECT md5('genrollment' || i)::uuid, '00000000-0000-0000-0000-0000000000a2', md5('student' || i)::uuid,
       '00000000-0000-0000-0000-00000000000a', 'active', {groups} * 2, {groups}, now() - interval '30 days'
FROM generate_series(1, 5) i;
INSERT INTO class_sessions (id, service_id, teacher_id, starts_at, ends_at, timezone, status)
SELECT md5('group' || g)::uuid, '00000000-0000-0000-0000-0000000000a2', '00000000-0000-0000-0000-00000000000a',
       now() - interval '3 hours' - g * interval '1 second', now() - interval '2 hours' - g * interval '1 second',
       'UTC', 'scheduled'
FROM generate_series(1, {groups}) g;
INSERT INTO session_participants (session_id, student_id, enrollment_id, status)
SELECT md5('group' || g)::uuid, md5('student' || i)::uuid, md5('genrollment' || i)::uuid,
       (CASE WHEN i = 4 THEN 'cancelled' ELSE 'confirmed' END)::participant_status
FROM generate_series(1, {groups}) g CROSS JOIN generate_series(1, 5) i;
"""

# The due-row select of sessions.auto_complete (jobs/sessions/auto_complete.py), as it reaches the server.
DUE_SELECT = """
SELECT id FROM class_sessions
WHERE status IN ('scheduled', 'in_progress') AND ends_at <= now() - make_interval(secs => {grace_s})
ORDER BY status, ends_at LIMIT {limit} FOR UPDATE SKIP LOCKED
"""

REMAINING = """(e.sessions_total - coalesce(e.sessions_scheduled, 0) - coalesce(e.sessions_completed, 0)
                - coalesce(e.sessions_cancelled, 0) - coalesce(e.sessions_forfeited, 0))"""

# Everything sessions.auto_complete writes, for every due row at once: one transaction, no batches,
# no row locks taken ahead (the limit the job is measured against).
REFERENCE = (
    """
BEGIN;
CREATE TEMP TABLE due ON COMMIT DROP AS
SELECT cs.id, cs.teacher_id, cs.enrollment_id, cs.student_id, coalesce(cs.is_trial_session, false) AS is_trial,
       t.completion_mode = 'MANUAL' AS manual, sv.pricing_model <> 'free' AS paid
FROM class_sessions cs JOIN teachers t ON t.id = cs.teacher_id JOIN services sv ON sv.id = cs.service_id
WHERE cs.status IN ('scheduled', 'in_progress') AND cs.ends_at <= now() - make_interval(secs => {grace_s});

UPDATE class_sessions cs
SET status = CASE WHEN d.manual THEN 'pending_review' ELSE 'completed' END::session_status,
    completed_at = now(), updated_at = now()
FROM due d WHERE cs.id = d.id;

CREATE TEMP TABLE consumer (enrollment_id uuid, session_id uuid, student_id uuid, teacher_id uuid,
                            is_trial boolean) ON COMMIT DROP;
INSERT INTO consumer
SELECT d.enrollment_id, d.id, d.student_id, d.teacher_id, d.is_trial FROM due d
WHERE NOT d.manual AND d.paid AND d.enrollment_id IS NOT NULL AND d.student_id IS NOT NULL;
WITH attended AS (
  UPDATE session_participants p SET status = 'attended'
  FROM due d
  WHERE p.session_id = d.id AND NOT d.manual AND d.paid AND d.student_id IS NULL AND p.status = 'confirmed'
  RETURNING p.enrollment_id, p.session_id, p.student_id, d.teacher_id, d.is_trial)
INSERT INTO consumer SELECT * FROM attended;

CREATE TEMP TABLE consumed ON COMMIT DROP AS SELECT * FROM consumer WITH NO DATA;
WITH inserted AS (
  INSERT INTO credit_ledger (enrollment_id, session_id, student_id, teacher_id, action, amount, actor,
                             idempotency_key)
  SELECT enrollment_id, session_id, student_id, teacher_id, 'CONSUME', 1, 'system',
         'CONSUME:' || enrollment_id || ':' || session_id || ':' || student_id
  FROM consumer
  ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
  RETURNING enrollment_id, session_id, student_id)
INSERT INTO consumed
SELECT c.* FROM inserted i JOIN consumer c USING (enrollment_id, session_id, student_id);

UPDATE enrollments e
SET sessions_scheduled = greatest(coalesce(e.sessions_scheduled, 0) - n.n, 0),
    sessions_completed = coalesce(e.sessions_completed, 0) + n.n, updated_at = now()
FROM (SELECT enrollment_id, count(*)::int AS n FROM consumed GROUP BY 1) n WHERE e.id = n.enrollment_id;

-- the closing rule (jobs/credits/closing.py): forfeit, expire, complete
WITH inserted AS (
  INSERT INTO credit_ledger (enrollment_id, student_id, teacher_id, action, amount, actor, idempotency_key)
  SELECT e.id, e.student_id, e.teacher_id, 'EXPIRE', REMAINING, 'system', 'EXPIRE:' || e.id || '::' || e.student_id
  FROM enrollments e
  WHERE e.id IN (SELECT enrollment_id FROM consumed) AND e.status = 'active' AND e.valid_until <= now()
    AND e.sessions_total IS NOT NULL AND REMAINING > 0
  ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
  RETURNING enrollment_id, amount)
UPDATE enrollments e SET sessions_forfeited = coalesce(e.sessions_forfeited, 0) + i.amount, updated_at = now()
FROM inserted i WHERE e.id = i.enrollment_id;
WITH closed AS (
  UPDATE enrollments e
  SET status = CASE WHEN e.sessions_total IS NOT NULL AND REMAINING <= 0 AND NOT EXISTS (
                      SELECT 1 FROM credit_ledger l WHERE l.idempotency_key = 'EXPIRE:' || e.id || '::' || e.student_id)
               THEN 'completed' ELSE 'expired' END::enrollment_status,
      updated_at = now()
  WHERE e.id IN (SELECT enrollment_id FROM consumed) AND e.status = 'active' AND e.valid_until <= now()
    AND (e.sessions_total IS NULL OR coalesce(e.sessions_scheduled, 0) = 0)
  RETURNING e.id, e.teacher_id, e.status, e.sessions_forfeited)
INSERT INTO audit_logs (teacher_id, actor_type, action, entity_type, entity_id, metadata)
SELECT teacher_id, 'system', 'enrollment.' || status, 'enrollment', id,
       jsonb_build_object('status', status, 'reason', 'valid_until_passed',
                          'sessions_forfeited', coalesce(sessions_forfeited, 0))
FROM closed;
UPDATE enrollments e SET status = 'completed', updated_at = now()
WHERE e.id IN (SELECT enrollment_id FROM consumed) AND e.status = 'active' AND e.sessions_total IS NOT NULL
  AND coalesce(e.sessions_scheduled, 0) = 0 AND REMAINING <= 0;

INSERT INTO student_lifecycle_events (teacher_id, student_id, event_type, metadata)
SELECT c.teacher_id, c.student_id, ev,
       jsonb_build_object('session_id', c.session_id::text, 'enrollment_id', c.enrollment_id::text)
FROM consumed c
CROSS JOIN LATERAL unnest(CASE WHEN c.is_trial THEN ARRAY['session_completed', 'trial_completed']
                          ELSE ARRAY['session_completed'] END::lifecycle_event_type[]) ev;
INSERT INTO audit_logs (teacher_id, actor_type, action, entity_type, entity_id, metadata)
SELECT teacher_id, 'system', 'session.auto_completed', 'class_session', id, '{{"status": "completed"}}'
FROM due WHERE NOT manual;
INSERT INTO notifications (teacher_id, recipient_type, type, title, body, payload)
SELECT teacher_id, 'teacher', 'session.review_needed', 'A session has ended and needs your review',
       'Confirm the session to complete it and use the student''s credit.',
       jsonb_build_object('session_id', id::text)
FROM due WHERE manual;
COMMIT;
"""
).replace("REMAINING", REMAINING)

# What must come out the same from the job and the reference (counts, and the counters' sums).
OUTCOME = """
SELECT 'sessions ' || status, count(*) FROM class_sessions GROUP BY status
UNION ALL SELECT 'sessions with completed_at', count(*) FROM class_sessions WHERE completed_at IS NOT NULL
UNION ALL SELECT 'participants ' || status, count(*) FROM session_participants GROUP BY status
UNION ALL SELECT 'ledger ' || action, count(*) FROM credit_ledger GROUP BY action
UNION ALL SELECT 'ledger distinct keys', count(DISTINCT idempotency_key) FROM credit_ledger
UNION ALL SELECT 'enrollments ' || status, count(*) FROM enrollments GROUP BY status
UNION ALL SELECT 'enrollments sum scheduled', sum(sessions_scheduled) FROM enrollments
UNION ALL SELECT 'enrollments sum completed', sum(sessions_completed) FROM enrollments
UNION ALL SELECT 'lifecycle ' || event_type, count(*) FROM student_lifecycle_events GROUP BY event_type
UNION ALL SELECT 'audit ' || action, count(*) FROM audit_logs GROUP BY action
UNION ALL SELECT 'notifications ' || type, count(*) FROM notifications GROUP BY type
"""

"""SQL of the credits.expire and messages.deliver_due benchmarks: data sets built set-based, and the
hand-written one-transaction references doing the same writes as the jobs, for every due row at once."""

from ops.bench.sweep_sql import REMAINING

# Shared: one teacher, one service, {students} students.
PEOPLE = """
INSERT INTO teachers (id, email, name, slug, timezone, completion_mode)
VALUES ('00000000-0000-0000-0000-00000000000a', 'auto@bench.test', 'Auto', 'auto', 'UTC', 'AUTO_COMPLETE');
INSERT INTO services (id, teacher_id, name, slug, delivery_mode, group_type, structure, pricing_model)
VALUES ('00000000-0000-0000-0000-0000000000a1', '00000000-0000-0000-0000-00000000000a', 'S', 's', 'live',
        'individual', 'package', 'credits');
INSERT INTO students (id, teacher_id, email, name, timezone)
SELECT md5('student' || i)::uuid, '00000000-0000-0000-0000-00000000000a', 's' || i || '@bench.test', 'S' || i, 'UTC'
FROM generate_series(1, {students}) i;
"""

# {due} enrollments past valid_until: a third with credits left and nothing booked (forfeit, expired),
# a third used up (completed), a third unlimited (expired); {other} not due: valid_until a month
# ahead (outside the notice window) or already closed.
CREDITS_DATA = (
    PEOPLE
    + """
INSERT INTO enrollments (service_id, student_id, teacher_id, status, sessions_total, sessions_scheduled,
                         sessions_completed, valid_from, valid_until)
SELECT '00000000-0000-0000-0000-0000000000a1', md5('student' || (i % {students} + 1))::uuid,
       '00000000-0000-0000-0000-00000000000a', 'active',
       CASE i % 3 WHEN 2 THEN NULL ELSE 10 END, 0, CASE i % 3 WHEN 0 THEN 4 WHEN 1 THEN 10 ELSE 7 END,
       now() - interval '400 days', now() - interval '1 hour' - i * interval '1 second'
FROM generate_series(1, {due}) i;
INSERT INTO enrollments (service_id, student_id, teacher_id, status, sessions_total, sessions_scheduled,
                         sessions_completed, valid_from, valid_until)
SELECT '00000000-0000-0000-0000-0000000000a1', md5('student' || (i % {students} + 1))::uuid,
       '00000000-0000-0000-0000-00000000000a',
       (CASE WHEN i % 2 = 0 THEN 'active' ELSE 'expired' END)::enrollment_status, 10, 1, 3,
       now() - interval '100 days',
       CASE WHEN i % 2 = 0 THEN now() + interval '30 days' + i * interval '1 second'
            ELSE now() - interval '30 days' - i * interval '1 second' END
FROM generate_series(1, {other}) i;
"""
)

CREDITS_DUE = f"""e.status = 'active' AND e.valid_until <= now()
  AND (e.sessions_total IS NULL OR coalesce(e.sessions_scheduled, 0) = 0
       OR ({REMAINING} > 0 AND NOT EXISTS (
           SELECT 1 FROM credit_ledger l WHERE l.idempotency_key = 'EXPIRE:' || e.id || '::' || e.student_id)))"""

# credits.expire's select of due rows, as it reaches the server (first batch).
CREDITS_DUE_SELECT = (
    "SELECT e.id, e.valid_until FROM enrollments e WHERE "
    + CREDITS_DUE
    + " ORDER BY e.valid_until LIMIT {limit} FOR NO KEY UPDATE SKIP LOCKED"
)

# Everything credits.expire writes, at once: forfeit, close with audit, and the expiry notices.
CREDITS_REFERENCE = f"""
BEGIN;
CREATE TEMP TABLE due ON COMMIT DROP AS SELECT e.id FROM enrollments e WHERE {CREDITS_DUE};
WITH inserted AS (
  INSERT INTO credit_ledger (enrollment_id, student_id, teacher_id, action, amount, actor, idempotency_key)
  SELECT e.id, e.student_id, e.teacher_id, 'EXPIRE', {REMAINING}, 'system', 'EXPIRE:' || e.id || '::' || e.student_id
  FROM enrollments e JOIN due USING (id)
  WHERE e.status = 'active' AND e.valid_until <= now() AND e.sessions_total IS NOT NULL AND {REMAINING} > 0
  ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
  RETURNING enrollment_id, amount)
UPDATE enrollments e SET sessions_forfeited = coalesce(e.sessions_forfeited, 0) + i.amount, updated_at = now()
FROM inserted i WHERE e.id = i.enrollment_id;
WITH closed AS (
  UPDATE enrollments e
  SET status = CASE WHEN e.sessions_total IS NOT NULL AND {REMAINING} <= 0 AND NOT EXISTS (
                      SELECT 1 FROM credit_ledger l WHERE l.idempotency_key = 'EXPIRE:' || e.id || '::' || e.student_id)
               THEN 'completed' ELSE 'expired' END::enrollment_status,
      updated_at = now()
  FROM due WHERE e.id = due.id AND e.status = 'active' AND e.valid_until <= now()
    AND (e.sessions_total IS NULL OR coalesce(e.sessions_scheduled, 0) = 0)
  RETURNING e.id, e.teacher_id, e.status, e.sessions_forfeited)
INSERT INTO audit_logs (teacher_id, actor_type, action, entity_type, entity_id, metadata)
SELECT teacher_id, 'system', 'enrollment.' || status, 'enrollment', id,
       jsonb_build_object('status', status, 'reason', 'valid_until_passed',
                          'sessions_forfeited', coalesce(sessions_forfeited, 0))
FROM closed;
WITH written AS (
  INSERT INTO student_lifecycle_events (teacher_id, student_id, event_type, metadata)
  SELECT e.teacher_id, e.student_id, 'enrollment_expiring',
         jsonb_build_object('enrollment_id', e.id, 'valid_until', e.valid_until, 'credits_remaining', {REMAINING})
  FROM enrollments e
  WHERE e.status = 'active' AND e.valid_until > now() AND e.valid_until <= now() + interval '7 days'
    AND e.sessions_total IS NOT NULL AND {REMAINING} > 0 AND NOT EXISTS (
      SELECT 1 FROM student_lifecycle_events ev WHERE ev.student_id = e.student_id
        AND ev.event_type = 'enrollment_expiring' AND ev.metadata ->> 'enrollment_id' = e.id::text)
  RETURNING teacher_id, student_id, metadata)
INSERT INTO notifications (teacher_id, student_id, recipient_type, type, title, body, payload)
SELECT teacher_id, student_id, 'student', 'enrollment.expiring', 'Your sessions are about to expire',
       (metadata ->> 'credits_remaining') || ' unused sessions expire soon: book them before they do.', metadata
FROM written;
COMMIT;
"""

CREDITS_OUTCOME = """
SELECT 'enrollments ' || status, count(*) FROM enrollments GROUP BY status
UNION ALL SELECT 'enrollments sum forfeited', sum(sessions_forfeited) FROM enrollments
UNION ALL SELECT 'ledger ' || action, count(*) FROM credit_ledger GROUP BY action
UNION ALL SELECT 'ledger sum amount', sum(amount) FROM credit_ledger
UNION ALL SELECT 'audit ' || action, count(*) FROM audit_logs GROUP BY action
UNION ALL SELECT 'lifecycle ' || event_type, count(*) FROM student_lifecycle_events GROUP BY event_type
UNION ALL SELECT 'notifications ' || type, count(*) FROM notifications GROUP BY type
"""

# {due} pending messages whose time has passed; {other} not due: nine in ten sent long ago, one in ten
# pending for next month.
MESSAGES_DATA = (
    PEOPLE
    + """
INSERT INTO scheduled_messages (teacher_id, student_id, channel, body, scheduled_for, status)
SELECT '00000000-0000-0000-0000-00000000000a', md5('student' || (i % {students} + 1))::uuid, 'email',
       'Hello ' || i, now() - interval '1 minute' - i * interval '1 second', 'pending'
FROM generate_series(1, {due}) i;
INSERT INTO scheduled_messages (teacher_id, student_id, channel, body, scheduled_for, status)
SELECT '00000000-0000-0000-0000-00000000000a', md5('student' || (i % {students} + 1))::uuid, 'email',
       'Hello ' || i,
       CASE WHEN i % 10 = 0 THEN now() + interval '30 days' + i * interval '1 second'
            ELSE now() - interval '30 days' - i * interval '1 second' END,
       (CASE WHEN i % 10 = 0 THEN 'pending' ELSE 'sent' END)::scheduled_message_status
FROM generate_series(1, {other}) i;
"""
)

MESSAGES_DUE_SELECT = """
SELECT id, scheduled_for FROM scheduled_messages WHERE status = 'pending' AND scheduled_for <= now()
ORDER BY status, scheduled_for LIMIT {limit} FOR UPDATE SKIP LOCKED
"""

# Everything messages.deliver_due writes, at once (jobs/messages/delivery.py for every due row).
MESSAGES_REFERENCE = """
WITH sent AS (
  UPDATE scheduled_messages m SET status = 'sent', contact_log_id = gen_random_uuid(), updated_at = now()
  WHERE m.status = 'pending' AND m.scheduled_for <= now()
  RETURNING m.id, m.teacher_id, m.student_id, m.channel, m.body, m.note, m.contact_log_id),
logged AS (
  INSERT INTO contact_log (id, teacher_id, student_id, channel, body, note)
  SELECT contact_log_id, teacher_id, student_id, channel, body, note FROM sent)
INSERT INTO notifications (teacher_id, recipient_type, type, title, body, payload)
SELECT teacher_id, 'teacher', 'scheduled_message.due', 'A scheduled message is due',
       'Your scheduled message is ready to send; it is in the student''s contact log.',
       jsonb_build_object('scheduled_message_id', id, 'contact_log_id', contact_log_id, 'student_id', student_id,
                          'channel', channel)
FROM sent;
"""

MESSAGES_OUTCOME = """
SELECT 'messages ' || status, count(*) FROM scheduled_messages GROUP BY status
UNION ALL SELECT 'messages with contact log', count(contact_log_id) FROM scheduled_messages
UNION ALL SELECT 'contact log', count(*) FROM contact_log
UNION ALL SELECT 'notifications ' || type, count(*) FROM notifications GROUP BY type
"""

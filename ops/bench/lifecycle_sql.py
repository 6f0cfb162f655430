"""The data set of the lifecycle benchmark, built set-based: {students} students of 100 teachers,
{per_student} sessions each.

Every fourth teacher has its own retention_settings (gap 21 days, churn 90). Students fall in three
kinds by i % 10: 0-5 weekly regulars (their last lesson within the week, every other one booked a
week ahead), 6-7 lapsed (last lesson 30 to 200 days ago), 8-9 long gone (300 to 700 days). One in
three has an enrollment that expired 100 days ago; the rest an active one. Every ninth past session
was cancelled. Rows carry the times they were written at (booked a week before, completed 15
minutes after the end), as the backend writes them, not the time the benchmark ran.
"""

DATA = """
INSERT INTO teachers (id, email, name, slug, timezone)
SELECT md5('teacher' || t)::uuid, 't' || t || '@bench.test', 'T' || t, 't' || t, 'UTC'
FROM generate_series(0, 99) t;
INSERT INTO retention_settings (teacher_id, gap_days, churn_days, streak_weeks, milestones)
SELECT md5('teacher' || t)::uuid, 21, 90, 6, '{{5,20}}' FROM generate_series(0, 99, 4) t;
INSERT INTO services (id, teacher_id, name, slug, delivery_mode, group_type, structure, pricing_model)
SELECT md5('service' || t)::uuid, md5('teacher' || t)::uuid, 'S', 's', 'live', 'individual', 'package', 'credits'
FROM generate_series(0, 99) t;
INSERT INTO students (id, teacher_id, email, name, timezone, status, created_at, updated_at)
SELECT md5('student' || i)::uuid, md5('teacher' || (i % 100))::uuid, 's' || i || '@bench.test', 'S' || i,
       (ARRAY['UTC', 'Europe/Oslo', 'Asia/Tokyo', 'America/New_York'])[1 + i % 4], 'active',
       now() - interval '800 days', now() - interval '800 days'
FROM generate_series(1, {students}) i;
INSERT INTO enrollments (id, service_id, student_id, teacher_id, status, sessions_total, valid_from, valid_until,
                         created_at, updated_at)
SELECT md5('enrollment' || i)::uuid, md5('service' || (i % 100))::uuid, md5('student' || i)::uuid,
       md5('teacher' || (i % 100))::uuid,
       (CASE WHEN i % 3 = 0 THEN 'expired' ELSE 'active' END)::enrollment_status, 100,
       now() - interval '800 days',
       CASE WHEN i % 3 = 0 THEN now() - interval '100 days' ELSE now() + interval '60 days' END,
       now() - interval '800 days',
       CASE WHEN i % 3 = 0 THEN now() - interval '100 days' ELSE now() - interval '800 days' END
FROM generate_series(1, {students}) i;
INSERT INTO class_sessions (enrollment_id, service_id, teacher_id, student_id, starts_at, ends_at, timezone,
                            status, completed_at, created_at, updated_at)
SELECT md5('enrollment' || i)::uuid, md5('service' || (i % 100))::uuid, md5('teacher' || (i % 100))::uuid,
       md5('student' || i)::uuid, t.ends_at - interval '1 hour', t.ends_at, 'UTC', t.status,
       CASE WHEN t.status = 'completed' THEN t.ends_at + interval '15 minutes' END,
       t.ends_at - interval '7 days',
       CASE WHEN t.ends_at < now() THEN t.ends_at + interval '15 minutes' ELSE t.ends_at - interval '7 days' END
FROM generate_series(1, {students}) i CROSS JOIN generate_series(1, {per_student}) k
CROSS JOIN LATERAL (
    SELECT at AS ends_at,
           (CASE WHEN at > now() THEN 'scheduled' WHEN (i + k) % 9 = 0 THEN 'cancelled_by_student'
                 ELSE 'completed' END)::session_status AS status
    FROM (SELECT CASE
        WHEN i % 10 < 6 THEN now() - ((k - 2 + i % 2) * 7 + i % 7) * interval '1 day' - (i % 24) * interval '1 hour'
        WHEN i % 10 < 8 THEN now() - (30 + i % 170 + (k - 1) * 7) * interval '1 day'
        ELSE now() - (300 + i % 300 + k * 10) * interval '1 day' END AS at) a) t;
"""

COUNTS = """
SELECT 'sessions', count(*) FROM class_sessions UNION ALL
SELECT 'students', count(*) FROM students UNION ALL
SELECT 'sessions ahead', count(*) FROM class_sessions WHERE ends_at > now() UNION ALL
SELECT 'lifecycle events', count(*) FROM student_lifecycle_events
"""

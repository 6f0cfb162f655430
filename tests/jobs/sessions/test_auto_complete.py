import asyncio

from sqlalchemy import func, select

from db import pinteach as t
from jobfleet.payloads import Sweep
from jobs.sessions import auto_complete
from tests.factories import ago, ahead


async def run(deps):
    return await auto_complete.run(deps, Sweep())


async def test_completes_an_ended_session_and_consumes_one_credit(deps, seed):
    ids = await seed.individual(ends_at=ago(minutes=20))

    assert await run(deps) == {"completed": 1, "pending_review": 0, "credits_consumed": 1}

    session = await seed.row(t.class_sessions, t.class_sessions.c.id == ids["session_id"])
    assert session.status == "completed" and session.completed_at is not None
    ledger = await seed.row(t.credit_ledger)
    assert (ledger.action, ledger.amount, ledger.actor) == ("CONSUME", 1, "system")
    assert ledger.idempotency_key == f"CONSUME:{ids['enrollment_id']}:{ids['session_id']}:{ids['student_id']}"
    enrollment = await seed.row(t.enrollments)
    assert (enrollment.sessions_scheduled, enrollment.sessions_completed, enrollment.status) == (
        0,
        1,
        "active",
    )
    events = await seed.rows(t.student_lifecycle_events)
    assert [e.event_type for e in events] == ["session_completed"]
    assert events[0].metadata["session_id"] == str(ids["session_id"])
    audit = await seed.row(t.audit_logs)
    assert (audit.actor_type, audit.action, audit.entity_type, audit.entity_id) == (
        "system",
        "session.auto_completed",
        "class_session",
        ids["session_id"],
    )


async def test_respects_the_grace_period_and_due_statuses(deps, seed):
    recent = await seed.individual(ends_at=ago(minutes=10))  # inside the 15-minute grace
    held = await seed.individual(ends_at=ago(hours=2), status="hold")
    cancelled = await seed.individual(ends_at=ago(hours=2), status="cancelled_by_student")
    running = await seed.individual(ends_at=ago(minutes=16), status="in_progress")

    assert (await run(deps))["completed"] == 1
    statuses = {r.id: r.status for r in await seed.rows(t.class_sessions)}
    assert statuses[recent["session_id"]] == "scheduled"
    assert statuses[held["session_id"]] == "hold"
    assert statuses[cancelled["session_id"]] == "cancelled_by_student"
    assert statuses[running["session_id"]] == "completed"


async def test_manual_teacher_gets_review_and_no_credit_moves(deps, seed):
    ids = await seed.individual(teacher={"completion_mode": "MANUAL"})

    assert await run(deps) == {"completed": 0, "pending_review": 1, "credits_consumed": 0}

    assert (await seed.row(t.class_sessions)).status == "pending_review"
    note = await seed.row(t.notifications)
    assert (note.teacher_id, note.recipient_type, note.type, note.student_id) == (
        ids["teacher_id"],
        "teacher",
        "session.review_needed",
        None,
    )
    assert await seed.count(t.credit_ledger) == 0
    assert (await seed.row(t.enrollments)).sessions_completed == 0
    assert await seed.count(t.student_lifecycle_events) == 0


async def test_last_credit_completes_the_enrollment_and_trial_adds_its_event(deps, seed):
    await seed.individual(
        is_trial_session=True,
        enrollment={"sessions_total": 3, "sessions_completed": 2, "sessions_scheduled": 1},
    )

    await run(deps)

    assert (await seed.row(t.enrollments)).status == "completed"
    events = sorted(e.event_type for e in await seed.rows(t.student_lifecycle_events))
    assert events == ["session_completed", "trial_completed"]


async def test_unlimited_enrollment_stays_active(deps, seed):
    await seed.individual(enrollment={"sessions_total": None, "sessions_scheduled": 1})
    await run(deps)
    enrollment = await seed.row(t.enrollments)
    assert (enrollment.status, enrollment.sessions_completed) == ("active", 1)


async def test_counter_never_goes_below_zero(deps, seed):
    await seed.individual(enrollment={"sessions_scheduled": 0})
    await run(deps)
    assert (await seed.row(t.enrollments)).sessions_scheduled == 0


async def test_group_session_consumes_for_confirmed_participants_only(deps, seed):
    teacher = await seed.teacher()
    service = await seed.service(teacher, group_type="group", max_participants=5)
    session = await seed.session(service, teacher)
    people = {}
    for status in ("confirmed", "confirmed", "cancelled", "no_show"):
        student = await seed.student(teacher)
        enrollment = await seed.enrollment(service, student, teacher)
        await seed.participant(session, student, enrollment, status=status)
        people[student] = (enrollment, status)

    assert await run(deps) == {"completed": 1, "pending_review": 0, "credits_consumed": 2}

    parts = {p.student_id: p.status for p in await seed.rows(t.session_participants)}
    for student, (enrollment, status) in people.items():
        expected = "attended" if status == "confirmed" else status
        assert parts[student] == expected
        e = await seed.row(t.enrollments, t.enrollments.c.id == enrollment)
        assert e.sessions_completed == (1 if status == "confirmed" else 0)
    assert {r.student_id for r in await seed.rows(t.credit_ledger)} == {
        s for s, (_, status) in people.items() if status == "confirmed"
    }
    assert await seed.count(t.student_lifecycle_events) == 2
    assert await seed.count(t.audit_logs) == 1


async def test_free_service_and_sessions_without_enrollment_change_status_only(deps, seed):
    free = await seed.individual(service={"pricing_model": "free"})
    teacher = await seed.teacher()
    service = await seed.service(teacher)
    loose = await seed.session(service, teacher)

    assert await run(deps) == {"completed": 2, "pending_review": 0, "credits_consumed": 0}
    statuses = {r.id: r.status for r in await seed.rows(t.class_sessions)}
    assert statuses[free["session_id"]] == statuses[loose] == "completed"
    assert await seed.count(t.credit_ledger) == 0
    assert (await seed.row(t.enrollments)).sessions_completed == 0


async def test_an_existing_consume_row_is_not_doubled(deps, seed):
    """The backend (or a crashed earlier run) already wrote the CONSUME row: no second row, and
    the counters, which that writer moved, are left alone."""
    ids = await seed.individual(enrollment={"sessions_scheduled": 1})
    key = f"CONSUME:{ids['enrollment_id']}:{ids['session_id']}:{ids['student_id']}"
    await seed.insert(
        t.credit_ledger,
        enrollment_id=ids["enrollment_id"],
        session_id=ids["session_id"],
        student_id=ids["student_id"],
        teacher_id=ids["teacher_id"],
        action="CONSUME",
        amount=1,
        idempotency_key=key,
    )

    assert await run(deps) == {"completed": 1, "pending_review": 0, "credits_consumed": 0}
    assert await seed.count(t.credit_ledger) == 1
    assert (await seed.row(t.enrollments)).sessions_completed == 0


async def test_sweeps_in_batches_until_nothing_is_due(deps, seed):
    teacher = await seed.teacher()
    service = await seed.service(teacher)
    for i in range(7):
        await seed.session(service, teacher, ends_at=ago(minutes=30 + i))
    deps_small = deps.with_settings(sweep_batch_size=3)

    assert (await auto_complete.run(deps_small, Sweep()))["completed"] == 7


async def test_two_concurrent_sweeps_complete_each_session_once(deps, seed):
    teacher = await seed.teacher()
    service = await seed.service(teacher)
    students = [await seed.student(teacher) for _ in range(4)]
    enrollments = [
        await seed.enrollment(service, s, teacher, sessions_scheduled=25, sessions_total=30) for s in students
    ]
    for i in range(100):
        k = i % 4
        await seed.session(
            service,
            teacher,
            enrollment_id=enrollments[k],
            student_id=students[k],
            ends_at=ago(minutes=20 + i),
        )
    deps_small = deps.with_settings(sweep_batch_size=7)

    a, b = await asyncio.gather(
        auto_complete.run(deps_small, Sweep()), auto_complete.run(deps_small, Sweep())
    )

    assert a["completed"] + b["completed"] == 100
    assert a["completed"] > 0 and b["completed"] > 0, "both sweeps should have taken batches"
    async with deps.pinteach.connect() as conn:
        per_session = (
            await conn.execute(
                select(t.credit_ledger.c.session_id, func.count()).group_by(t.credit_ledger.c.session_id)
            )
        ).all()
    assert len(per_session) == 100 and all(n == 1 for _, n in per_session)
    for e in await seed.rows(t.enrollments):
        assert (e.sessions_completed, e.sessions_scheduled) == (25, 0)
    assert await seed.count(t.audit_logs) == 100


async def test_future_sessions_are_untouched(deps, seed):
    await seed.individual(ends_at=ahead(hours=1))
    assert (await run(deps))["completed"] == 0

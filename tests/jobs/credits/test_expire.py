import asyncio

import pytest
from sqlalchemy import func, select

from db import pinteach as t
from jobfleet.payloads import Sweep
from jobs.credits import expire
from jobs.credits.closing import expire_key
from jobs.deps import Deps
from tests.factories import PinTeach, ago, ahead

pytestmark = pytest.mark.asyncio

NOTHING = {"expired": 0, "credits_expired": 0, "expiring_notices": 0}


async def run(deps: Deps) -> dict[str, int]:
    return await expire.run(deps, Sweep())


async def enrollment(seed: PinTeach, **kw) -> dict:
    teacher = await seed.teacher()
    student = await seed.student(teacher)
    service = await seed.service(teacher)
    values = {"sessions_total": 10, "sessions_scheduled": 0, "valid_until": ago(hours=1), **kw}
    enrollment_id = await seed.enrollment(service, student, teacher, **values)
    return {
        "teacher_id": teacher,
        "student_id": student,
        "service_id": service,
        "enrollment_id": enrollment_id,
    }


async def get(seed: PinTeach, ids: dict):
    return await seed.row(t.enrollments, t.enrollments.c.id == ids["enrollment_id"])


async def test_expires_remaining_credits_and_closes_the_enrollment(deps, seed):
    ids = await enrollment(seed, sessions_completed=4, sessions_cancelled=1, sessions_forfeited=1)

    assert await run(deps) == {"expired": 1, "credits_expired": 4, "expiring_notices": 0}

    row = await get(seed, ids)
    assert (row.status, row.sessions_forfeited) == ("expired", 5)
    ledger = await seed.row(t.credit_ledger)
    assert (ledger.action, ledger.amount, ledger.actor, ledger.session_id) == ("EXPIRE", 4, "system", None)
    assert ledger.idempotency_key == expire_key(ids["enrollment_id"], ids["student_id"])
    assert (ledger.enrollment_id, ledger.student_id, ledger.teacher_id) == (
        ids["enrollment_id"],
        ids["student_id"],
        ids["teacher_id"],
    )
    audit = await seed.row(t.audit_logs)
    assert (audit.actor_type, audit.action, audit.entity_type, audit.entity_id) == (
        "system",
        "enrollment.expired",
        "enrollment",
        ids["enrollment_id"],
    )
    assert audit.metadata["sessions_forfeited"] == 5
    assert await seed.count(t.student_lifecycle_events) == 0


async def test_used_up_enrollment_past_valid_until_is_completed_without_a_ledger_row(deps, seed):
    ids = await enrollment(seed, sessions_total=3, sessions_completed=3)

    assert await run(deps) == NOTHING

    assert (await get(seed, ids)).status == "completed"
    assert await seed.count(t.credit_ledger) == 0
    assert (await seed.row(t.audit_logs)).action == "enrollment.completed"


async def test_booked_sessions_are_honoured(deps, seed):
    ids = await enrollment(seed, sessions_total=10, sessions_scheduled=2, sessions_completed=5)

    assert await run(deps) == {"expired": 0, "credits_expired": 3, "expiring_notices": 0}
    row = await get(seed, ids)
    assert (row.status, row.sessions_forfeited, row.sessions_scheduled) == ("active", 3, 2)
    assert await seed.count(t.audit_logs) == 0

    # Nothing more to do while the sessions are booked: the next runs leave it alone.
    assert await run(deps) == NOTHING
    assert await seed.count(t.credit_ledger) == 1

    # The backend cancels one booked session and gives its credit back: that credit expires too.
    async with seed.engine.begin() as conn:
        await conn.execute(
            t.enrollments.update()
            .where(t.enrollments.c.id == ids["enrollment_id"])
            .values(sessions_scheduled=1)
        )
    assert await run(deps) == NOTHING  # the EXPIRE key is spent; the credit stays, nothing loops
    assert (await get(seed, ids)).status == "active"


async def test_unlimited_enrollment_expires_without_a_ledger_row(deps, seed):
    ids = await enrollment(seed, sessions_total=None, sessions_scheduled=2)

    assert await run(deps) == {"expired": 1, "credits_expired": 0, "expiring_notices": 0}
    assert (await get(seed, ids)).status == "expired"
    assert await seed.count(t.credit_ledger) == 0
    assert (await seed.row(t.audit_logs)).action == "enrollment.expired"


async def test_only_active_enrollments_past_valid_until_are_due(deps, seed):
    future = await enrollment(seed, valid_until=ahead(days=30))
    open_ended = await enrollment(seed, valid_until=None)
    paused = await enrollment(seed, status="suspended")
    unpaid = await enrollment(seed, status="pending_payment")

    assert await run(deps) == NOTHING
    for ids, status in (
        (future, "active"),
        (open_ended, "active"),
        (paused, "suspended"),
        (unpaid, "pending_payment"),
    ):
        assert (await get(seed, ids)).status == status
    assert await seed.count(t.credit_ledger) == 0


async def test_an_existing_expire_row_is_not_doubled(deps, seed):
    """A crashed run, or the backend, already wrote the EXPIRE row and moved the counter."""
    ids = await enrollment(seed, sessions_completed=6, sessions_forfeited=4)
    await seed.insert(
        t.credit_ledger,
        enrollment_id=ids["enrollment_id"],
        student_id=ids["student_id"],
        teacher_id=ids["teacher_id"],
        action="EXPIRE",
        amount=4,
        idempotency_key=expire_key(ids["enrollment_id"], ids["student_id"]),
    )

    assert await run(deps) == {"expired": 1, "credits_expired": 0, "expiring_notices": 0}
    row = await get(seed, ids)
    assert (row.status, row.sessions_forfeited) == ("expired", 4)
    assert await seed.count(t.credit_ledger) == 1


async def test_a_crash_half_way_is_finished_by_the_next_run(deps, seed):
    ids = [await enrollment(seed, sessions_completed=i, valid_until=ago(hours=10 - i)) for i in range(4)]

    class Crash(Exception):
        pass

    async with deps.pinteach.begin() as conn:  # the first batch commits
        await expire.expire_batch(conn, limit=2)
    with pytest.raises(Crash):
        async with deps.pinteach.begin() as conn:
            await expire.expire_batch(conn, limit=2)
            raise Crash  # the worker dies in the second batch, before its commit

    assert await seed.count(t.credit_ledger) == 2
    assert await run(deps) == {"expired": 2, "credits_expired": 8 + 7, "expiring_notices": 0}
    assert {(await get(seed, i)).status for i in ids} == {"expired"}
    assert sorted(r.amount for r in await seed.rows(t.credit_ledger)) == [7, 8, 9, 10]


async def test_two_concurrent_sweeps_expire_each_enrollment_once(deps, seed):
    teacher = await seed.teacher()
    service = await seed.service(teacher)
    for i in range(60):
        student = await seed.student(teacher)
        await seed.enrollment(
            service,
            student,
            teacher,
            sessions_total=10,
            sessions_scheduled=i % 2,  # half keep booked sessions and stay active
            valid_until=ago(hours=1 + i),
        )
    small = deps.with_settings(sweep_batch_size=4)

    a, b = await asyncio.gather(run(small), run(small))

    assert a["credits_expired"] + b["credits_expired"] == 30 * 10 + 30 * 9
    assert a["expired"] + b["expired"] == 30
    async with deps.pinteach.connect() as conn:
        per_enrollment = (
            await conn.execute(
                select(t.credit_ledger.c.enrollment_id, func.count()).group_by(
                    t.credit_ledger.c.enrollment_id
                )
            )
        ).all()
    assert len(per_enrollment) == 60 and all(n == 1 for _, n in per_enrollment)
    assert await seed.count(t.audit_logs) == 30
    assert await run(deps) == NOTHING


async def test_expiry_notice_once_per_enrollment(deps, seed):
    soon = await enrollment(seed, valid_until=ahead(days=3), sessions_completed=7)
    await enrollment(seed, valid_until=ahead(days=10))  # outside the 7-day window
    await enrollment(seed, valid_until=ahead(days=2), sessions_completed=10)  # nothing left to lose
    await enrollment(seed, valid_until=ahead(days=2), sessions_total=None)  # unlimited

    assert await run(deps) == {"expired": 0, "credits_expired": 0, "expiring_notices": 1}
    assert await run(deps) == NOTHING

    event = await seed.row(t.student_lifecycle_events)
    assert (event.event_type, event.student_id, event.teacher_id) == (
        "enrollment_expiring",
        soon["student_id"],
        soon["teacher_id"],
    )
    assert event.metadata["enrollment_id"] == str(soon["enrollment_id"])
    assert event.metadata["credits_remaining"] == 3
    note = await seed.row(t.notifications)
    assert (note.recipient_type, note.type, note.student_id, note.teacher_id) == (
        "student",
        "enrollment.expiring",
        soon["student_id"],
        soon["teacher_id"],
    )
    assert note.payload["enrollment_id"] == str(soon["enrollment_id"])


async def test_notice_window_is_a_setting(deps, seed):
    await enrollment(seed, valid_until=ahead(days=10))
    assert (await run(deps.with_settings(credits_expiry_notice_days=14)))["expiring_notices"] == 1


async def test_a_second_enrollment_of_the_same_student_gets_its_own_notice(deps, seed):
    first = await enrollment(seed, valid_until=ahead(days=3))
    assert (await run(deps))["expiring_notices"] == 1
    service = await seed.service(first["teacher_id"])
    await seed.enrollment(service, first["student_id"], first["teacher_id"], valid_until=ahead(days=4))

    assert (await run(deps))["expiring_notices"] == 1
    assert await seed.count(t.notifications) == 2


async def test_concurrent_sweeps_send_each_notice_once(deps, seed):
    for i in range(30):
        await enrollment(seed, valid_until=ahead(days=1, hours=i))
    small = deps.with_settings(sweep_batch_size=3)

    results = await asyncio.gather(*(run(small) for _ in range(4)))

    assert sum(r["expiring_notices"] for r in results) == 30
    assert await seed.count(t.notifications) == 30
    assert await seed.count(t.student_lifecycle_events) == 30

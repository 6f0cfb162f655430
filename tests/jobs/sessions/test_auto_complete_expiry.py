"""sessions.auto_complete closes an enrollment past valid_until the way credits.expire does."""

import asyncio

from db import pinteach as t
from jobfleet.payloads import Sweep
from jobs.credits import expire
from jobs.credits.closing import expire_key
from jobs.sessions import auto_complete
from tests.factories import ago


async def complete(deps) -> dict[str, int]:
    return await auto_complete.run(deps, Sweep())


async def test_last_booked_session_after_credits_expired_closes_as_expired(deps, seed):
    ids = await seed.individual(
        enrollment={
            "sessions_total": 10,
            "sessions_scheduled": 1,
            "sessions_completed": 5,
            "valid_until": ago(days=2),
        }
    )
    assert (await expire.run(deps, Sweep()))["credits_expired"] == 4
    assert (await seed.row(t.enrollments)).status == "active"  # the booked session is honoured

    assert (await complete(deps))["credits_consumed"] == 1

    enrollment = await seed.row(t.enrollments)
    assert (enrollment.status, enrollment.sessions_scheduled, enrollment.sessions_completed) == (
        "expired",
        0,
        6,
    )
    assert enrollment.sessions_forfeited == 4
    assert sorted(r.action for r in await seed.rows(t.credit_ledger)) == ["CONSUME", "EXPIRE"]
    audit = await seed.row(t.audit_logs, t.audit_logs.c.entity_type == "enrollment")
    assert (audit.action, audit.entity_id) == ("enrollment.expired", ids["enrollment_id"])


async def test_last_booked_session_forfeits_what_credits_expire_has_not_yet(deps, seed):
    ids = await seed.individual(
        enrollment={
            "sessions_total": 8,
            "sessions_scheduled": 1,
            "sessions_completed": 2,
            "valid_until": ago(hours=3),
        }
    )

    await complete(deps)

    enrollment = await seed.row(t.enrollments)
    assert (enrollment.status, enrollment.sessions_forfeited, enrollment.sessions_completed) == (
        "expired",
        5,
        3,
    )
    expired = await seed.row(t.credit_ledger, t.credit_ledger.c.action == "EXPIRE")
    assert expired.amount == 5
    assert expired.idempotency_key == expire_key(ids["enrollment_id"], ids["student_id"])
    # credits.expire, running after, finds nothing more to do
    assert await expire.run(deps, Sweep()) == {"expired": 0, "credits_expired": 0, "expiring_notices": 0}


async def test_last_booked_session_with_nothing_forfeited_completes(deps, seed):
    await seed.individual(
        enrollment={
            "sessions_total": 3,
            "sessions_scheduled": 1,
            "sessions_completed": 2,
            "valid_until": ago(hours=3),
        }
    )

    await complete(deps)

    assert (await seed.row(t.enrollments)).status == "completed"
    assert [r.action for r in await seed.rows(t.credit_ledger)] == ["CONSUME"]
    audit = await seed.row(t.audit_logs, t.audit_logs.c.entity_type == "enrollment")
    assert audit.action == "enrollment.completed"


async def test_enrollment_with_more_booked_sessions_stays_active(deps, seed):
    await seed.individual(
        enrollment={
            "sessions_total": 10,
            "sessions_scheduled": 2,
            "sessions_completed": 1,
            "valid_until": ago(hours=3),
        }
    )

    await complete(deps)

    enrollment = await seed.row(t.enrollments)
    # the unbooked credits expire at once; the enrollment waits for its other booked session
    assert (enrollment.status, enrollment.sessions_scheduled, enrollment.sessions_forfeited) == (
        "active",
        1,
        7,
    )


async def test_auto_complete_racing_credits_expire_forfeits_once(deps, seed):
    teacher = await seed.teacher()
    service = await seed.service(teacher)
    for i in range(30):
        student = await seed.student(teacher)
        enrollment = await seed.enrollment(
            service, student, teacher, sessions_total=5, sessions_scheduled=1, valid_until=ago(hours=2)
        )
        await seed.session(
            service, teacher, enrollment_id=enrollment, student_id=student, ends_at=ago(hours=1, minutes=i)
        )

    completed, _ = await asyncio.gather(complete(deps), expire.run(deps, Sweep()))

    assert completed["credits_consumed"] == 30
    for e in await seed.rows(t.enrollments):
        assert (e.status, e.sessions_completed, e.sessions_forfeited, e.sessions_scheduled) == (
            "expired",
            1,
            4,
            0,
        )
    assert await seed.count(t.credit_ledger, t.credit_ledger.c.action == "EXPIRE") == 30
    assert await seed.count(t.audit_logs, t.audit_logs.c.entity_type == "enrollment") == 30

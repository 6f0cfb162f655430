"""``jobfleet audit`` on a clean database finds nothing; on a corrupted one it names every violation."""

from datetime import UTC, datetime, timedelta

from db import pickatale as p
from db import pinteach as t
from jobfleet.payloads import Sweep
from jobs.sessions import auto_complete
from ops.audit import audit_pinteach, audit_telemetry
from tests.factories import PinTeach, ahead


async def consistent_data(seed: PinTeach) -> dict:
    ids = await seed.individual(enrollment={"sessions_scheduled": 2})
    await seed.session(
        ids["service_id"],
        ids["teacher_id"],
        enrollment_id=ids["enrollment_id"],
        student_id=ids["student_id"],
        ends_at=ahead(days=2),
    )
    return ids


async def test_a_clean_database_has_no_violations(deps, pg, mysql):
    seed = PinTeach(pg)
    await consistent_data(seed)
    await auto_complete.run(deps, Sweep())  # the fleet's own writes keep the invariants
    async with mysql.begin() as conn:
        await conn.execute(
            p.events.insert().values(
                event_id="e1",
                learner_id="l1",
                session_id="s1",
                event_type="book_opened",
                client_ts=1,
                created_at=datetime.now(UTC).replace(tzinfo=None) - timedelta(days=90),
            )
        )
    assert await audit_pinteach(pg) == []
    assert await audit_telemetry(mysql, max_age_days=90) == []


async def test_a_corrupted_database_reports_each_violation_with_ids(pg, mysql):
    seed = PinTeach(pg)
    ids = await consistent_data(seed)
    e = ids["enrollment_id"]
    # a double consume, written without idempotency keys, for a session that is not completed
    for _ in range(2):
        await seed.insert(
            t.credit_ledger,
            enrollment_id=e,
            session_id=ids["session_id"],
            student_id=ids["student_id"],
            teacher_id=ids["teacher_id"],
            action="CONSUME",
            amount=1,
        )
    # a seat offered twice
    service = await seed.service(ids["teacher_id"], group_type="group", max_participants=1)
    for _ in range(2):
        await seed.insert(
            t.waitlist_entries,
            teacher_id=ids["teacher_id"],
            service_id=service,
            student_id=await seed.student(ids["teacher_id"]),
            position=1,
            status="notified",
        )
    # a sent message with no contact log, and a completed erasure that erased nothing
    await seed.insert(
        t.scheduled_messages,
        teacher_id=ids["teacher_id"],
        student_id=ids["student_id"],
        channel="email",
        body="hi",
        scheduled_for=ahead(hours=-1),
        status="sent",
    )
    request = await seed.insert(
        t.data_erasure_requests,
        teacher_id=ids["teacher_id"],
        student_id=ids["student_id"],
        requested_by="student",
        status="completed",
        due_at=ahead(days=-1),
    )
    async with mysql.begin() as conn:
        await conn.execute(
            p.events.insert().values(
                event_id="old",
                learner_id="l1",
                session_id="s1",
                event_type="book_opened",
                client_ts=1,
                created_at=datetime.now(UTC).replace(tzinfo=None) - timedelta(days=95),
            )
        )

    found = {v.check: v for v in await audit_pinteach(pg)}
    assert set(found) == {
        "enrollment_counters",
        "double_consume",
        "consume_without_completion",
        "waitlist_over_offered",
        "sent_message_without_contact_log",
        "erasure_incomplete",
    }
    assert found["enrollment_counters"].ids["enrollment_id"] == e
    assert "completed 0 vs 2 CONSUME" in str(found["enrollment_counters"])
    assert found["double_consume"].ids["session_id"] == ids["session_id"]
    assert found["waitlist_over_offered"].ids == {"service_id": service, "open_offers": 2, "free_seats": 1}
    assert found["erasure_incomplete"].ids["request_id"] == request
    late = await audit_telemetry(mysql, max_age_days=90)
    assert len(late) == 1 and late[0].check == "telemetry_retention"

"""``jobfleet audit`` on a clean database finds nothing; on a corrupted one it names every violation."""

import json
from datetime import UTC, datetime, timedelta

import asyncpg

from db import pickatale as p
from db import pinteach as t
from jobfleet.payloads import Sweep
from jobs.sessions import auto_complete
from ops.audit import PINTEACH_CHECKS, audit_pickatale, audit_pinteach, audit_telemetry
from tests import services
from tests.cli.run import jobfleet
from tests.factories import PinTeach, ago, ahead


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


async def corrupt(seed: PinTeach, mysql) -> dict:
    """One violation of every check; returns the ids involved."""
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

    # a milestone recorded twice, a churned student who booked two days ago, a review request
    # still pending two days after it expired (the checks of the teachers' settings jobs)
    other = await seed.student(ids["teacher_id"], status="churned")
    for _ in range(2):
        await seed.insert(
            t.student_lifecycle_events,
            teacher_id=ids["teacher_id"],
            student_id=other,
            event_type="milestone_reached",
            metadata={"milestone": 10},
        )
    await seed.session(
        ids["service_id"], ids["teacher_id"], student_id=other, ends_at=ahead(days=3), created_at=ago(days=2)
    )
    await seed.insert(
        t.review_requests,
        teacher_id=ids["teacher_id"],
        student_id=other,
        channel="link",
        token="audit-test-token",
        expires_at=ago(days=2),
    )
    # three sessions counted as scheduled and none booked, one more than the enrollment holds
    overdrawn = await seed.enrollment(
        ids["service_id"], ids["student_id"], ids["teacher_id"], sessions_total=2, sessions_scheduled=3
    )
    return {**ids, "service": service, "request": request, "overdrawn": overdrawn}


async def test_a_corrupted_database_reports_each_violation_with_ids(pg, mysql):
    ids = await corrupt(PinTeach(pg), mysql)
    e, service, request = ids["enrollment_id"], ids["service"], ids["request"]
    violations = await audit_pinteach(pg)
    assert {v.check for v in violations} == {check.name for check in PINTEACH_CHECKS}
    [counters] = [v for v in violations if v.ids.get("enrollment_id") == e]
    assert counters.check == "enrollment_counters" and "completed 0 vs 2 CONSUME" in str(counters)
    found = {v.check: v for v in violations if v.check != "enrollment_counters"}
    doubled = [v.ids["session_id"] for v in violations if v.check == "double_consume"]
    assert ids["session_id"] in doubled
    assert found["waitlist_over_offered"].ids == {"service_id": service, "open_offers": 2, "free_seats": 1}
    assert found["erasure_incomplete"].ids["request_id"] == request
    late = await audit_telemetry(mysql, max_age_days=90)
    assert len(late) == 1 and late[0].check == "telemetry_retention"


async def test_notes_put_back_on_an_erased_students_session_are_personal_data(deps, pg):
    """Every column the erasure clears is checked, from the list the erasure itself uses."""
    from jobs.gdpr import erase_due
    from jobs.gdpr.personal_data import SESSION_CONTENT_CLEARED, STUDENT_COLUMNS_CLEARED

    seed = PinTeach(pg)
    ids = await consistent_data(seed)
    await seed.insert(t.session_content, session_id=ids["session_id"], summary="read chapter 3", rating=4)
    request = await seed.insert(
        t.data_erasure_requests,
        teacher_id=ids["teacher_id"],
        student_id=ids["student_id"],
        requested_by="student",
        due_at=ahead(days=-1),
    )
    await erase_due.run(deps, Sweep())

    async def erasure_violations() -> list:
        return [v for v in await audit_pinteach(pg) if v.check == "erasure_incomplete"]

    assert await erasure_violations() == []

    # each cleared column put back on its own is found
    session_content = t.session_content.c
    for column in SESSION_CONTENT_CLEARED:
        async with pg.begin() as conn:
            await conn.execute(
                t.session_content.update()
                .where(session_content.session_id == ids["session_id"])
                .values({column: "happy" if column in ("student_mood", "student_level") else "notes"})
            )
        found = await erasure_violations()
        assert [v.ids["request_id"] for v in found] == [request], column
        async with pg.begin() as conn:
            await conn.execute(
                t.session_content.update()
                .where(session_content.session_id == ids["session_id"])
                .values({column: None})
            )
    assert await erasure_violations() == []
    async with pg.begin() as conn:
        await conn.execute(
            t.students.update()
            .where(t.students.c.id == ids["student_id"])
            .values(referral_source="instagram")
        )
    assert len(await erasure_violations()) == 1
    assert "referral_source" in STUDENT_COLUMNS_CLEARED


async def pickatale_world(deps, mysql) -> dict:
    """A class of two learners, one of them erased by the fleet."""
    from jobs.learners import erase_due
    from tests.jobs.learners.world import world

    w = await world(mysql)
    assert (await erase_due.run(deps, Sweep()))["erased"] == 1
    return w


async def test_a_clean_pickatale_has_no_violations(deps, mysql):
    await pickatale_world(deps, mysql)
    assert await audit_pickatale(mysql) == ([], [])


async def test_a_corrupted_pickatale_reports_each_violation_with_ids(deps, mysql):
    w = await pickatale_world(deps, mysql)
    now = datetime.now(UTC).replace(tzinfo=None)
    async with mysql.begin() as conn:
        # the app uploaded a late event for the erased learner
        await conn.execute(
            p.events.insert().values(
                event_id="late",
                learner_id=w["emma"]["learner_id"],
                session_id="s",
                event_type="page_turned",
                client_ts=1,
                created_at=now,
            )
        )
        # someone re-enrolled the erased student, and filled another class over its cap
        await conn.execute(
            p.class_memberships.update()
            .where(p.class_memberships.c.student_id == w["emma"]["student_id"])
            .values(archived_at=None)
        )
        full = (
            await conn.execute(
                p.classes.insert().values(
                    class_name="4A", year_level=4, teacher_id=w["teacher_id"], state="active"
                )
            )
        ).inserted_primary_key[0]
        for i in range(34):
            student = (
                await conn.execute(
                    p.teacher_portal_students.insert().values(
                        uuid=f"00000000-0000-4000-8000-{i:012d}",
                        name=f"Kid {i}",
                        username=f"kid{i}",
                        pin_hash="x",
                    )
                )
            ).inserted_primary_key[0]
            await conn.execute(
                p.class_memberships.insert().values(student_id=student, class_id=full, enrolled_at=now)
            )

    found, skipped = await audit_pickatale(mysql)

    assert skipped == []
    assert {(v.check, tuple(v.ids.items())) for v in found} == {
        ("class_over_cap", (("class_id", full), ("active_memberships", 34))),
        (
            "learner_erasure_incomplete",
            (("request_id", w["request_id"]), ("learner_id", w["emma"]["learner_id"])),
        ),
        ("erased_learner_still_active", (("student_id", w["emma"]["student_id"]),)),
    }


async def test_without_the_request_table_the_learner_checks_are_skipped_with_one_line(deps, mysql, settings):
    schema = f"{settings.pickatale_db_prefix}account_center"
    async with mysql.connect() as conn:
        await conn.exec_driver_sql(f"RENAME TABLE {schema}.learner_erasure_requests TO {schema}.ler_moved")
    try:
        found, skipped = await audit_pickatale(mysql)
    finally:
        async with mysql.connect() as conn:
            await conn.exec_driver_sql(
                f"RENAME TABLE {schema}.ler_moved TO {schema}.learner_erasure_requests"
            )
    assert found == []
    assert len(skipped) == 1 and "learner_erasure_requests is missing" in skipped[0]


async def test_audit_json_names_the_pickatale_violations(deps, env, pg, mysql):
    w = await pickatale_world(deps, mysql)
    async with mysql.begin() as conn:
        await conn.execute(
            p.learner_memories.insert().values(learner_id=w["emma"]["learner_id"], memory_type="x", value={})
        )

    result = jobfleet(env, "audit", "--json")

    assert result.returncode == 1, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines == [
        {
            "check": "learner_erasure_incomplete",
            "message": "the learner erasure is completed but the learner still has rows",
            "request_id": w["request_id"],
            "learner_id": w["emma"]["learner_id"],
        }
    ]


async def test_audit_json_holds_every_checks_violations_and_exits_1(env, pg, mysql):
    ids = await corrupt(PinTeach(pg), mysql)
    result = jobfleet(env, "audit", "--json")
    assert result.returncode == 1, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    by_check: dict[str, list[dict]] = {}
    for line in lines:
        by_check.setdefault(line["check"], []).append(line)
    assert set(by_check) == {check.name for check in PINTEACH_CHECKS} | {"telemetry_retention"}
    assert all(isinstance(line["message"], str) and line["message"] for line in lines)
    e, overdrawn = str(ids["enrollment_id"]), str(ids["overdrawn"])
    counters = {line["enrollment_id"]: line for line in by_check["enrollment_counters"]}
    assert counters[e]["completed"] == 0 and counters[e]["consume_rows"] == 2
    # a sum() of counts: numeric in PostgreSQL, a plain integer in the JSON
    assert counters[e]["booked_sessions"] == 2 and counters[e]["scheduled"] == 2
    assert counters[overdrawn]["scheduled"] == 3 and counters[overdrawn]["booked_sessions"] == 0
    assert by_check["enrollment_overdrawn"] == [
        {
            "check": "enrollment_overdrawn",
            "message": "uses more credits than it has (remaining -1)",
            "enrollment_id": overdrawn,
            "remaining": -1,
        }
    ]
    [double] = by_check["double_consume"]
    assert (double["session_id"], double["consume_rows"]) == (str(ids["session_id"]), 2)
    [unearned] = by_check["consume_without_completion"][:1]
    assert unearned["session_id"] == str(ids["session_id"])
    assert by_check["waitlist_over_offered"][0] | {"message": ""} == {
        "check": "waitlist_over_offered",
        "message": "",
        "service_id": str(ids["service"]),
        "open_offers": 2,
        "free_seats": 1,
    }
    [message] = by_check["sent_message_without_contact_log"]
    assert set(message) == {"check", "message", "message_id"}
    [erasure] = by_check["erasure_incomplete"]
    assert erasure["request_id"] == str(ids["request"]) and erasure["student_id"] == str(ids["student_id"])
    [late] = by_check["telemetry_retention"]
    assert late["event_ids"] and "older than 90 days" in late["message"]


async def test_audit_that_cannot_finish_exits_2_with_one_line(env):
    name = f"jf_test_{services.RUN_ID}_unaudited"
    admin = await asyncpg.connect(services.PG_ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        dsn = services.PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + name
        result = jobfleet({**env, "JOBFLEET_PINTEACH_DSN": dsn}, "audit", "--json")
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("jobfleet audit: could not finish: ProgrammingError: ")
    assert 'relation "credit_ledger" does not exist' in line

"""``jobfleet audit`` on a clean database finds nothing; on a corrupted one it names every violation."""

import json
from datetime import UTC, datetime, timedelta

import asyncpg

from db import pickatale as p
from db import pinteach as t
from jobfleet.payloads import Sweep
from jobs.sessions import auto_complete
from ops.audit import PINTEACH_CHECKS, audit_pinteach, audit_telemetry
from tests import services
from tests.cli.run import jobfleet
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

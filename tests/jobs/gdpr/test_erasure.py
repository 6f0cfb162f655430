import asyncio
import dataclasses
from typing import Any
from uuid import UUID

import pytest
from pydantic import SecretStr
from sqlalchemy import select
from structlog.testing import capture_logs

from db import pinteach as t
from demo.gdpr import seed_demo
from jobfleet.payloads import ErasureRequestRef, Sweep
from jobs.errors import JobError, NotFound, Permanent
from jobs.gdpr import erase, erase_due
from tests.column_scan import scan_pinteach
from tests.factories import PinTeach, ago, ahead
from tests.fakes.drive_server import DriveServer

PII = {
    "name": "Solveig Eraseme",
    "email": "solveig.private@example.net",
    "phone": "+47 400 11 222",
    "goals": "Read Ibsen in the original by June",
}
OTHER = {
    "name": "Oskar Keepme",
    "email": "oskar.keep@example.net",
    "phone": "+47 900 99 888",
    "goals": "Order coffee in Bergen",
}


@pytest.fixture
def drive():
    server = DriveServer().start()
    yield server
    server.stop()


@pytest.fixture
def gdeps(deps, drive):
    """Deps whose Google endpoints are the local Drive server."""
    settings = deps.settings.model_copy(
        update={
            "google_api_endpoint": drive.url,
            "google_token_uri": drive.token_uri,
            "google_client_id": "client-id.apps.googleusercontent.com",
            "google_client_secret": SecretStr("client-secret"),
        }
    )
    return dataclasses.replace(deps, settings=settings)


async def sweep(deps):
    return await erase_due.run(deps, Sweep())


async def request(seed: PinTeach, teacher: UUID, student: UUID, **kw: Any) -> UUID:
    return await seed.insert(
        t.data_erasure_requests,
        **{
            "teacher_id": teacher,
            "student_id": student,
            "requested_by": "student",
            "reason": "Asked by the student in a lesson",
            "requested_at": ago(days=31),
            "due_at": ago(days=1),
            **kw,
        },
    )


async def drive_connection(seed: PinTeach, drive: DriveServer, teacher: UUID, **kw: Any) -> UUID:
    drive.state.access_tokens.add("ya29.valid")
    drive.state.refresh_tokens.add("1//refresh")
    connection = await seed.insert(
        t.oauth_connections,
        **{
            "teacher_id": teacher,
            "provider": "google",
            "provider_account_id": "google-account-1",
            "access_token": "ya29.valid",
            "refresh_token": "1//refresh",
            "token_expires_at": ahead(hours=1),
            **kw,
        },
    )
    await seed.insert(
        t.integration_settings,
        teacher_id=teacher,
        integration_type="drive",
        config={"connectionId": str(connection)},
    )
    return connection


async def personal_data(seed: PinTeach, teacher: UUID, student: UUID, who: dict[str, str], tag: UUID) -> None:
    """Rows in every table the erasure covers, naming the student."""
    contact = await seed.insert(
        t.contact_log,
        teacher_id=teacher,
        student_id=student,
        channel="email",
        body=f"Wrote to {who['email']}",
    )
    await seed.insert(
        t.scheduled_messages,
        teacher_id=teacher,
        student_id=student,
        channel="sms",
        body=f"Hi {who['name']}, see you soon",
        scheduled_for=ahead(days=1),
        status="sent",
        contact_log_id=contact,
    )
    await seed.insert(
        t.notifications,
        teacher_id=teacher,
        student_id=student,
        recipient_type="student",
        type="session.reminder",
        title=f"Reminder for {who['name']}",
    )
    await seed.insert(
        t.notifications,
        teacher_id=teacher,
        recipient_type="teacher",
        type="student.signed_up",
        title=f"{who['name']} signed up",
        payload={"student_id": str(student), "phone": who["phone"]},
    )
    await seed.insert(
        t.student_lifecycle_events,
        teacher_id=teacher,
        student_id=student,
        event_type="first_contact",
        metadata={"email": who["email"]},
    )
    await seed.insert(t.student_tags, student_id=student, tag_id=tag)
    await seed.insert(
        t.reviews, teacher_id=teacher, student_id=student, reviewer_name=who["name"], rating=5, body="Great!"
    )


async def world(seed: PinTeach, drive: DriveServer) -> dict[str, Any]:
    """A teacher with Drive, the student to erase (soft-deleted, with data everywhere), and another."""
    teacher = await seed.teacher()
    await drive_connection(seed, drive, teacher)
    tag = await seed.insert(t.tags, teacher_id=teacher, name="exam-prep")
    lessons = await seed.service(teacher)
    group = await seed.service(teacher, group_type="group", max_participants=6)
    ids: dict[str, Any] = {"teacher": teacher}
    for key, who in (("s", PII), ("o", OTHER)):
        student = await seed.student(
            teacher,
            name=who["name"],
            email=who["email"],
            phone=who["phone"],
            level="B1",
            goals=who["goals"],
            preferred_days=["mon", "wed"],
            preferred_start_time="17:00",
            referral_source="instagram",
            drive_folder_id=f"folder-{key}",
        )
        drive.state.folders.add(f"folder-{key}")
        enrollment = await seed.enrollment(lessons, student, teacher, sessions_scheduled=2)
        past = await seed.session(
            lessons, teacher, enrollment_id=enrollment, student_id=student, status="completed"
        )
        future = await seed.session(
            lessons, teacher, enrollment_id=enrollment, student_id=student, ends_at=ahead(days=3)
        )
        cancelled = await seed.session(
            lessons,
            teacher,
            enrollment_id=enrollment,
            student_id=student,
            ends_at=ahead(days=5),
            status="cancelled_by_student",
        )
        for session in (past, future):
            await seed.insert(
                t.session_content,
                session_id=session,
                summary=f"{who['name']} read chapter 3",
                teacher_notes=f"call {who['phone']}",
                student_mood="happy",
                rating=5,
            )
        await seed.insert(t.session_payment, session_id=past, amount_paid=4000, currency="EUR")
        await seed.insert(t.session_calendar_sync, session_id=future, sync_status="synced")
        for action, session in (("CONSUME", past), ("RESERVE", future)):
            await seed.insert(
                t.credit_ledger,
                enrollment_id=enrollment,
                session_id=session,
                student_id=student,
                teacher_id=teacher,
                action=action,
                amount=1,
                idempotency_key=f"{action}:{enrollment}:{session}:{student}",
            )
        await seed.insert(
            t.waitlist_entries,
            teacher_id=teacher,
            service_id=group,
            student_id=student,
            position=1 + len(ids),
        )
        await personal_data(seed, teacher, student, who, tag)
        # an earlier profile change, its metadata naming the student
        ids[f"audit_{key}"] = await seed.insert(
            t.audit_logs,
            teacher_id=teacher,
            actor_type="teacher",
            action="student.updated",
            entity_type="student",
            entity_id=student,
            metadata={
                "changes": {"email": {"from": "old@example.net", "to": who["email"]}, "goals": who["goals"]},
                "note": f"{who['name']} asked for a new phone number: {who['phone']}",
                "fields": 3,
            },
        )
        ids[key] = {
            "student": student,
            "enrollment": enrollment,
            "past": past,
            "future": future,
            "cancelled": cancelled,
        }
    # A group session ahead, both students booked in it.
    session = await seed.session(group, teacher, ends_at=ahead(days=2))
    await seed.insert(t.session_calendar_sync, session_id=session, sync_status="synced")
    ids["group"] = session
    for key in ("s", "o"):
        student = ids[key]["student"]
        enrollment = await seed.enrollment(group, student, teacher, sessions_scheduled=1)
        ids[key]["group_enrollment"] = enrollment
        ids[key]["seat"] = await seed.participant(session, student, enrollment)
        await seed.insert(
            t.credit_ledger,
            enrollment_id=enrollment,
            session_id=session,
            student_id=student,
            teacher_id=teacher,
            action="RESERVE",
            amount=1,
            idempotency_key=f"RESERVE:{enrollment}:{session}:{student}",
        )
    # The erased student had already left the teacher's list: soft-deleted.
    async with seed.engine.begin() as conn:
        await conn.execute(
            t.students.update().where(t.students.c.id == ids["s"]["student"]).values(deleted_at=ago(days=40))
        )
    ids["request"] = await request(
        seed,
        teacher,
        ids["s"]["student"],
        reason=f"Solveig asked in a lesson; confirm by mail to {PII['email']} ({PII['name']})",
    )
    return ids


async def snapshot(engine) -> dict[str, dict[tuple, dict]]:
    tables = {}
    async with engine.connect() as conn:
        for table in t.metadata.sorted_tables:
            pk = list(table.primary_key.columns)
            rows = (await conn.execute(select(table))).mappings()
            tables[table.name] = {tuple(row[c.name] for c in pk): dict(row) for row in rows}
    return tables


def changes(before: dict, after: dict) -> dict[str, dict[str, set]]:
    found: dict[str, dict[str, set]] = {}
    for name in before:
        old, new = before[name], after[name]
        kinds = {
            "deleted": set(old) - set(new),
            "inserted": set(new) - set(old),
            "updated": {pk for pk in set(old) & set(new) if old[pk] != new[pk]},
        }
        kinds = {kind: pks for kind, pks in kinds.items() if pks}
        if kinds:
            found[name] = kinds
    return found


async def test_erasure_leaves_no_trace_and_touches_no_one_else(gdeps, seed, drive):
    ids = await world(seed, drive)
    s, o = ids["s"], ids["o"]
    values = list(PII.values())
    seen = {(h.table, h.column) for h in await scan_pinteach(seed.engine, values)}
    assert seen >= {
        ("students", "email"),
        ("students", "goals"),
        ("session_content", "teacher_notes"),
        ("audit_logs", "metadata"),
        ("data_erasure_requests", "reason"),
    }, "the scan must find the seeded data before the erasure"
    before = await snapshot(seed.engine)

    assert await sweep(gdeps) == {"erased": 1, "failed": 0}

    # the generic proof: no text, varchar or jsonb column of any table holds her email, name,
    # phone or goals
    assert [str(h) for h in await scan_pinteach(seed.engine, values)] == []
    after = await snapshot(seed.engine)
    found = changes(before, after)
    # Every row that changed, row for row: the erased student's own, and the request's records.
    own = lambda table: {pk for pk, row in before[table].items() if row["student_id"] == s["student"]}  # noqa: E731
    new = lambda table: set(after[table]) - set(before[table])  # noqa: E731
    assert found == {
        "students": {"updated": {(s["student"],)}},
        "scheduled_messages": {"deleted": own("scheduled_messages")},
        "contact_log": {"deleted": own("contact_log")},
        "student_lifecycle_events": {"deleted": own("student_lifecycle_events")},
        "student_tags": {"deleted": own("student_tags")},
        "waitlist_entries": {"deleted": own("waitlist_entries")},
        "reviews": {"deleted": own("reviews")},
        "notifications": {
            "deleted": {
                pk
                for pk, row in before["notifications"].items()
                if row["student_id"] == s["student"]
                or (row["payload"] or {}).get("student_id") == str(s["student"])
            },
            "inserted": new("notifications"),
        },
        "session_content": {"updated": {(s["past"],), (s["future"],)}},
        "class_sessions": {"updated": {(s["future"],)}},
        "session_participants": {"updated": {(s["seat"],)}},
        "session_calendar_sync": {"updated": {(s["future"],), (ids["group"],)}},
        "credit_ledger": {"inserted": new("credit_ledger")},
        "enrollments": {"updated": {(s["enrollment"],), (s["group_enrollment"],)}},
        "data_erasure_requests": {"updated": {(ids["request"],)}},
        "audit_logs": {"inserted": new("audit_logs"), "updated": {(ids["audit_s"],)}},
    }
    # the earlier audit row stays, scrubbed; the other student's is untouched
    assert after["audit_logs"][(ids["audit_s"],)]["metadata"] == {
        "changes": {"email": {"from": "old@example.net", "to": "[erased]"}, "goals": "[erased]"},
        "note": "[erased] asked for a new phone number: [erased]",
        "fields": 3,
    }
    assert {k: v for k, v in after["audit_logs"][(ids["audit_s"],)].items() if k != "metadata"} == {
        k: v for k, v in before["audit_logs"][(ids["audit_s"],)].items() if k != "metadata"
    }
    assert len(found["notifications"]["deleted"]) == 2

    student = after["students"][(s["student"],)]
    assert (student["name"], student["email"], student["status"]) == (
        "Erased student",
        f"erased-{s['student']}@invalid.example",
        "archived",
    )
    assert student["deleted_at"] == before["students"][(s["student"],)]["deleted_at"], (
        "kept the first deletion"
    )
    for column in ("phone", "level", "goals", "preferred_days", "preferred_start_time", "referral_source"):
        assert student[column] is None, column
    assert student["drive_folder_id"] is None
    assert drive.state.folders == {"folder-o"}
    content = after["session_content"][(s["past"],)]
    assert (content["summary"], content["teacher_notes"], content["student_mood"], content["rating"]) == (
        None,
        None,
        None,
        5,
    )

    sessions = after["class_sessions"]
    assert sessions[(s["future"],)]["status"] == "cancelled_system"
    assert sessions[(ids["group"],)]["status"] == "scheduled", "the group session goes on for the others"
    assert after["session_participants"][(s["seat"],)]["status"] == "cancelled"
    assert after["session_participants"][(o["seat"],)]["status"] == "confirmed"
    assert {after["session_calendar_sync"][(k,)]["sync_status"] for k in (s["future"], ids["group"])} == {
        "pending"
    }
    released = [after["credit_ledger"][pk] for pk in new("credit_ledger")]
    assert sorted(r["idempotency_key"] for r in released) == sorted(
        [
            f"RELEASE:{s['enrollment']}:{s['future']}:{s['student']}",
            f"RELEASE:{s['group_enrollment']}:{ids['group']}:{s['student']}",
        ]
    )
    assert {(r["action"], r["amount"], r["actor"]) for r in released} == {("RELEASE", 1, "system")}
    enrollments = after["enrollments"]
    assert enrollments[(s["enrollment"],)]["sessions_scheduled"] == 1
    assert enrollments[(s["group_enrollment"],)]["sessions_scheduled"] == 0

    done = after["data_erasure_requests"][(ids["request"],)]
    assert done["status"] == "completed" and done["processed_at"] is not None
    assert done["reason"] == "[erased] asked in a lesson; confirm by mail to [erased] ([erased])"
    was = before["data_erasure_requests"][(ids["request"],)]
    assert (done["requested_at"], done["due_at"], done["requested_by"]) == (
        was["requested_at"],
        was["due_at"],
        was["requested_by"],
    )
    (audit,) = [after["audit_logs"][pk] for pk in new("audit_logs")]
    assert (audit["actor_type"], audit["action"], audit["entity_type"], audit["entity_id"]) == (
        "system",
        "gdpr.erasure_completed",
        "data_erasure_request",
        ids["request"],
    )
    assert audit["metadata"]["sessions_cancelled"] == 1 and audit["metadata"]["credits_released"] == 2
    (note,) = [after["notifications"][pk] for pk in new("notifications")]
    assert (note["teacher_id"], note["recipient_type"], note["type"], note["student_id"]) == (
        ids["teacher"],
        "teacher",
        "gdpr.erasure_completed",
        None,
    )


async def test_takes_due_and_processing_requests_only(gdeps, seed):
    teacher = await seed.teacher()
    students = {name: await seed.student(teacher) for name in ("due", "early", "rejected", "done", "stuck")}
    requests = {
        "due": await request(seed, teacher, students["due"]),
        "early": await request(seed, teacher, students["early"], due_at=ahead(days=2)),
        "rejected": await request(seed, teacher, students["rejected"], status="rejected"),
        "done": await request(seed, teacher, students["done"], status="completed", processed_at=ago(days=3)),
        "stuck": await request(seed, teacher, students["stuck"], status="processing", due_at=ahead(days=9)),
    }
    before = {r.id: r for r in await seed.rows(t.data_erasure_requests)}

    assert await sweep(gdeps) == {"erased": 2, "failed": 0}

    after = {r.id: r for r in await seed.rows(t.data_erasure_requests)}
    names = {s.id: s.name for s in await seed.rows(t.students)}
    for key in ("due", "stuck"):
        assert after[requests[key]].status == "completed"
        assert names[students[key]] == "Erased student"
    assert after[requests["early"]].status == "pending"
    for key in ("early", "rejected", "done"):
        assert after[requests[key]] == before[requests[key]], f"{key} request must not be touched"
        assert names[students[key]] != "Erased student"


async def test_erase_takes_a_pending_request_before_it_is_due(gdeps, seed):
    teacher = await seed.teacher()
    student = await seed.student(teacher)
    request_id = await request(seed, teacher, student, due_at=ahead(days=20))

    assert await erase.run(gdeps, ErasureRequestRef(request_id=request_id)) == {"erased": 1, "failed": 0}
    assert (await seed.row(t.data_erasure_requests)).status == "completed"

    # Again, on the completed request: nothing happens.
    assert await erase.run(gdeps, ErasureRequestRef(request_id=request_id)) == {"erased": 0, "failed": 0}
    assert await seed.count(t.audit_logs) == 1 and await seed.count(t.notifications) == 1


async def test_erase_refuses_a_rejected_or_unknown_request(gdeps, seed):
    teacher = await seed.teacher()
    student = await seed.student(teacher)
    rejected = await request(seed, teacher, student, status="rejected", rejection_reason="legal hold")

    with pytest.raises(Permanent, match="rejected"):
        await erase.run(gdeps, ErasureRequestRef(request_id=rejected))
    with pytest.raises(NotFound, match="no data erasure request"):
        await erase.run(gdeps, ErasureRequestRef(request_id=student))
    assert (await seed.row(t.data_erasure_requests)).status == "rejected"
    assert (await seed.row(t.students)).name != "Erased student"


async def test_a_crash_after_marking_is_finished_by_the_next_sweep(gdeps, seed):
    teacher = await seed.teacher()
    student = await seed.student(teacher)
    request_id = await request(seed, teacher, student)
    # The run that crashed got as far as its first commit.
    assert await erase_due.claim(gdeps.pinteach, limit=10, tried=set()) == [request_id]
    assert (await seed.row(t.data_erasure_requests)).status == "processing"

    assert await sweep(gdeps) == {"erased": 1, "failed": 0}
    assert (await seed.row(t.data_erasure_requests)).status == "completed"
    assert (await seed.row(t.students)).name == "Erased student"
    assert await sweep(gdeps) == {"erased": 0, "failed": 0}
    assert await seed.count(t.audit_logs) == 1


@pytest.mark.parametrize(("status", "reason"), [(500, "backendError"), (403, "insufficientFilePermissions")])
async def test_a_drive_failure_keeps_the_request_processing_and_the_data_whole(
    gdeps, seed, drive, status, reason
):
    teacher = await seed.teacher()
    await drive_connection(seed, drive, teacher)
    student = await seed.student(teacher, name=PII["name"], drive_folder_id="folder-x")
    await seed.insert(
        t.contact_log, teacher_id=teacher, student_id=student, channel="email", body="Lesson booked"
    )
    drive.state.failures["folder-x"] = (status, reason)
    request_id = await request(seed, teacher, student)

    with capture_logs() as logs:
        assert await sweep(gdeps) == {"erased": 0, "failed": 1}

    assert (await seed.row(t.data_erasure_requests)).status == "processing"
    row = await seed.row(t.students)
    assert (row.name, row.drive_folder_id) == (PII["name"], "folder-x"), "nothing half-erased"
    assert await seed.count(t.contact_log) == 1
    failure = next(e for e in logs if e["event"] == "gdpr_erasure_failed")
    assert failure["request_id"] == str(request_id) and f"answered {status} ({reason})" in failure["error"]
    assert failure["retryable"] is (status == 500)
    assert PII["name"] not in str(logs)

    # The queued job reports the failure to the runtime; once Drive recovers, the sweep finishes.
    with pytest.raises(JobError, match=reason):
        await erase.run(gdeps, ErasureRequestRef(request_id=request_id))
    del drive.state.failures["folder-x"]
    drive.state.folders.add("folder-x")
    assert await sweep(gdeps) == {"erased": 1, "failed": 0}
    assert "folder-x" not in drive.state.folders


async def test_a_folder_already_gone_counts_as_deleted(gdeps, seed, drive):
    teacher = await seed.teacher()
    await drive_connection(seed, drive, teacher)
    student = await seed.student(teacher, drive_folder_id="folder-gone")
    await request(seed, teacher, student)

    assert await sweep(gdeps) == {"erased": 1, "failed": 0}
    assert ("DELETE", "/drive/v3/files/folder-gone") in drive.state.requests
    assert (await seed.row(t.students)).drive_folder_id is None


async def test_an_expired_token_is_refreshed_and_kept(gdeps, seed, drive):
    teacher = await seed.teacher()
    connection = await drive_connection(
        seed, drive, teacher, access_token="ya29.old", token_expires_at=ago(minutes=5)
    )
    student = await seed.student(teacher, drive_folder_id="folder-r")
    drive.state.folders.add("folder-r")
    await request(seed, teacher, student)

    assert await sweep(gdeps) == {"erased": 1, "failed": 0}

    assert drive.state.requests[:2] == [("POST", "/token"), ("DELETE", "/drive/v3/files/folder-r")]
    saved = await seed.row(t.oauth_connections, t.oauth_connections.c.id == connection)
    assert saved.access_token == "ya29.fresh-1" and saved.token_expires_at > ago(seconds=0)


async def test_a_revoked_refresh_token_fails_the_erasure(gdeps, seed, drive):
    teacher = await seed.teacher()
    await drive_connection(seed, drive, teacher, access_token=None, refresh_token="1//revoked")
    student = await seed.student(teacher, drive_folder_id="folder-r")
    request_id = await request(seed, teacher, student)

    with pytest.raises(Permanent, match="refused to refresh"):
        await erase.run(gdeps, ErasureRequestRef(request_id=request_id))
    assert (await seed.row(t.data_erasure_requests)).status == "processing"


async def test_without_a_drive_integration_the_folder_is_left_and_the_erasure_completes(gdeps, seed, drive):
    teacher = await seed.teacher()
    student = await seed.student(teacher, drive_folder_id="folder-n")
    drive.state.folders.add("folder-n")
    await request(seed, teacher, student)

    assert await sweep(gdeps) == {"erased": 1, "failed": 0}
    assert drive.state.requests == [] and (await seed.row(t.students)).drive_folder_id is None


async def test_two_erasures_of_one_request_at_once_erase_once(gdeps, seed, drive):
    ids = await world(seed, drive)
    ref = ErasureRequestRef(request_id=ids["request"])

    a, b, c = await asyncio.gather(erase.run(gdeps, ref), erase.run(gdeps, ref), sweep(gdeps))

    assert a["erased"] + b["erased"] + c["erased"] == 1
    assert await seed.count(t.audit_logs, t.audit_logs.c.action == "gdpr.erasure_completed") == 1
    assert await seed.count(t.notifications, t.notifications.c.type == "gdpr.erasure_completed") == 1
    assert await seed.count(t.credit_ledger, t.credit_ledger.c.action == "RELEASE") == 2
    enrollment = await seed.row(t.enrollments, t.enrollments.c.id == ids["s"]["enrollment"])
    assert enrollment.sessions_scheduled == 1


async def test_the_demo_request_is_erased_by_a_sweep(gdeps, seed):
    async with seed.engine.begin() as conn:
        demo = await seed_demo(conn)

    assert await sweep(gdeps) == {"erased": 1, "failed": 0}
    request_row = await seed.row(t.data_erasure_requests, t.data_erasure_requests.c.id == demo["request_id"])
    assert request_row.status == "completed"
    assert await seed.count(t.class_sessions, t.class_sessions.c.status == "cancelled_system") == 1

"""retention.teacher_policies on real PostgreSQL: each setting, chunks and budget, races, erasure."""

import asyncio
from datetime import timedelta

import pytest

from db import pinteach as t
from jobfleet.payloads import Sweep
from jobs.deps import Deps
from jobs.gdpr import erase_due
from jobs.retention import teacher_policies
from tests.factories import PinTeach, ago
from tests.jobs.lifecycle.test_detect import table_moved_away

pytestmark = pytest.mark.asyncio


async def run(deps: Deps) -> dict[str, int]:
    return await teacher_policies.run(deps, Sweep())


async def two_teachers(seed: PinTeach, **settings) -> tuple[dict, dict]:
    """One teacher with the settings, one without (whose data is kept)."""
    out = []
    for with_settings in (True, False):
        teacher = await seed.teacher()
        if with_settings:
            await seed.insert(t.data_retention_settings, teacher_id=teacher, **settings)
        student = await seed.student(teacher)
        service = await seed.service(teacher)
        out.append({"teacher": teacher, "student": student, "service": service})
    return out[0], out[1]


async def test_contact_log_older_than_the_setting_is_deleted(deps, seed):
    mine, other = await two_teachers(seed, contact_log_days=30)
    for ids in (mine, other):
        for days in (40, 31, 10):
            await seed.insert(
                t.contact_log,
                teacher_id=ids["teacher"],
                student_id=ids["student"],
                channel="email",
                body="hello",
                created_at=ago(days=days),
            )
    counts = await run(deps)
    assert counts["contact_log_deleted"] == 2 and counts["complete"] == 1
    left = await seed.rows(t.contact_log)
    assert sorted(r.teacher_id == mine["teacher"] for r in left) == [False, False, False, True]


async def test_only_notifications_read_long_enough_ago_are_deleted(deps, seed):
    mine, other = await two_teachers(seed, read_notifications_days=7)
    for ids in (mine, other):
        for read_at in (ago(days=8), ago(days=2), None):
            await seed.insert(
                t.notifications,
                teacher_id=ids["teacher"],
                recipient_type="teacher",
                type="x",
                title="x",
                read_at=read_at,
                created_at=ago(days=30),
            )
    assert (await run(deps))["notifications_deleted"] == 1
    assert await seed.count(t.notifications) == 5


async def test_session_notes_cleared_after_the_session_ended_long_enough_ago(deps, seed):
    mine, other = await two_teachers(seed, session_notes_days=90)
    sessions = {}
    for ids in (mine, other):
        for days in (100, 10):
            sid = await seed.session(
                ids["service"],
                ids["teacher"],
                student_id=ids["student"],
                ends_at=ago(days=days),
                status="completed",
            )
            await seed.insert(
                t.session_content, session_id=sid, summary="verbs", teacher_notes="shy", rating=5
            )
            sessions[(ids["teacher"], days)] = sid
    assert (await run(deps))["session_notes_cleared"] == 1
    content = {r.session_id: r for r in await seed.rows(t.session_content)}
    cleared = content[sessions[(mine["teacher"], 100)]]
    assert (cleared.summary, cleared.teacher_notes, cleared.rating) == (None, None, 5)
    for key in ((mine["teacher"], 10), (other["teacher"], 100)):
        assert content[sessions[key]].summary == "verbs"


async def test_soft_deleted_students_get_an_erasure_request_that_erase_due_carries_out(deps, seed):
    mine, other = await two_teachers(seed, erase_deleted_students_after_days=30)
    async with seed.engine.begin() as conn:
        await conn.execute(t.students.update().values(deleted_at=ago(days=31)))
    recent = await seed.student(mine["teacher"], deleted_at=ago(days=3))
    alive = await seed.student(mine["teacher"])

    assert (await run(deps))["erasure_requested"] == 1
    assert (await run(deps))["erasure_requested"] == 0  # never twice
    request = await seed.row(t.data_erasure_requests)
    assert (request.student_id, request.teacher_id, request.requested_by, request.status) == (
        mine["student"],
        mine["teacher"],
        "teacher",
        "pending",
    )
    assert "erase_deleted_students_after_days = 30 days" in request.reason
    assert abs(request.due_at - request.requested_at) < timedelta(seconds=1)  # due at once

    assert (await erase_due.run(deps, Sweep()))["erased"] == 1
    erased = await seed.row(t.students, t.students.c.id == mine["student"])
    assert erased.name == "Erased student"
    assert (await run(deps))["erasure_requested"] == 0
    for student in (recent, alive, other["student"]):
        assert (await seed.row(t.students, t.students.c.id == student)).name != "Erased student"


async def test_chunks_within_the_budget_and_two_concurrent_runs(deps, seed):
    mine, _ = await two_teachers(seed, contact_log_days=1, erase_deleted_students_after_days=1)
    for i in range(25):
        await seed.insert(
            t.contact_log, teacher_id=mine["teacher"], channel="sms", created_at=ago(days=2 + i)
        )
    for _ in range(12):
        await seed.student(mine["teacher"], deleted_at=ago(days=5))
    small = deps.with_settings(sweep_batch_size=4)

    a, b = await asyncio.gather(run(small), run(small))
    assert a["erasure_requested"] + b["erasure_requested"] == 12
    assert await seed.count(t.data_erasure_requests) == 12
    assert await seed.count(t.contact_log) == 0
    assert a["chunks"] >= 7  # 25 rows in chunks of 4, and the erasure chunks


async def test_a_spent_budget_leaves_the_rest_for_the_next_run(deps, seed):
    mine, _ = await two_teachers(seed, contact_log_days=1)
    for i in range(10):
        await seed.insert(
            t.contact_log, teacher_id=mine["teacher"], channel="sms", created_at=ago(days=3 + i)
        )
    spent = deps.with_settings(sweep_batch_size=3, retention_budget_s=1e-9)
    first = await run(spent)
    assert (first["contact_log_deleted"], first["chunks"], first["complete"]) == (3, 1, 0)
    assert await seed.count(t.contact_log) == 7
    runs = [await run(spent) for _ in range(3)]  # 3 + 3 + 1 rows
    assert [r["contact_log_deleted"] for r in runs] == [3, 3, 1] and runs[-1]["complete"] == 1
    assert await seed.count(t.contact_log) == 0


async def test_without_the_migration_it_says_so_and_changes_nothing(deps, seed):
    mine, _ = await two_teachers(seed)
    await seed.insert(t.contact_log, teacher_id=mine["teacher"], channel="sms", created_at=ago(days=3000))
    async with table_moved_away(seed.engine, "data_retention_settings"):
        assert (await run(deps))["migration_missing"] == 1
    assert await seed.count(t.contact_log) == 1

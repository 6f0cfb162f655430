"""learners.erase_due and learners.erase: a Pickatale learner erased step by step, resumable."""

import asyncio
import time
import uuid

import pytest
from sqlalchemy import func, select

from db.pickatale import (
    account_center_sessions,
    class_memberships,
    events,
    learner_erasure_requests,
    teacher_portal_students,
)
from jobfleet.payloads import LearnerErasureRef, Sweep
from jobs.errors import NotFound, Permanent
from jobs.learners import erase, erase_due
from jobs.learners.learner_data import ERASED_NAME, erased_uuid
from tests.column_scan import scan_pickatale
from tests.factories import ago
from tests.jobs.learners.world import (
    add_request,
    assert_only_the_learner_changed,
    differences,
    rows_of,
    snapshot,
    world,
)

r = learner_erasure_requests.c


async def request_row(engine, request_id):
    async with engine.connect() as conn:
        return (await conn.execute(select(learner_erasure_requests).where(r.id == request_id))).one()


async def count(engine, table, *where):
    async with engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(table).where(*where))).scalar_one()


async def test_erases_every_trace_of_the_learner_and_nothing_of_the_other(deps, mysql):
    w = await world(mysql)
    before = await snapshot(mysql)
    emma = w["emma"]
    values = [emma["learner_id"], "Emma", "Hansen", emma["username"]]
    prefix = deps.settings.pickatale_db_prefix
    # the scan finds her everywhere before: it is not blind
    assert {(h.table, h.column) for h in await scan_pickatale(mysql, prefix, values)} >= {
        ("teacher_portal.students", "uuid"),
        ("teacher_portal.students", "name"),
        ("teacher_portal.students", "username"),
        ("telemetry.events", "learner_id"),
        ("telemetry.events", "payload"),
        ("reader_app.reading_sessions", "learner_id"),
        ("learner_bot.learner_memories", "value"),
        ("learner_bot.vocabulary_gaps", "learner_id"),
        ("account_center.learner_erasure_requests", "reason"),
    }

    summary = await erase_due.run(deps, Sweep())

    assert summary["erased"] == 1 and summary["unfinished"] == summary["learners_not_found"] == 0
    # the generic proof: no text, varchar or JSON column of any table holds Emma's uuid, name or
    # username, except the request's learner_id, the record of the erasure itself
    hits = await scan_pickatale(mysql, prefix, values)
    assert [str(h) for h in hits] == [
        f"account_center.learner_erasure_requests.learner_id (row {w['request_id']}) holds {emma['learner_id']!r}"
    ]
    # what changed: Emma's rows deleted, her membership archived, her student row anonymised, the
    # request; Noah, in the same class and the same telemetry table, is untouched row for row
    after = await snapshot(mysql)
    assert_only_the_learner_changed(before, after, w)

    student = after["teacher_portal.students"][emma["student_id"]]
    s = teacher_portal_students.c
    row = dict(zip(s.keys(), student, strict=True))
    assert (row["name"], row["username"], row["pin_hash"], row["state"]) == (
        ERASED_NAME,
        f"erased-{emma['student_id']}",
        "!",
        "archived",
    )
    assert row["uuid"] == erased_uuid(w["request_id"])
    request = await request_row(mysql, w["request_id"])
    assert request.status == "completed" and request.processed_at is not None
    assert (
        request.reason
        == "[erased]'s mother asks us to erase [erased]'s account ([erased]) and reading history."
    )


async def test_seat_counts_drop_and_class_history_stays(deps, mysql):
    w = await world(mysql)
    m = class_memberships.c
    assert await count(mysql, class_memberships, m.class_id == w["class_id"], m.archived_at.is_(None)) == 2

    await erase.run(deps, LearnerErasureRef(request_id=w["request_id"]))

    assert await count(mysql, class_memberships, m.class_id == w["class_id"], m.archived_at.is_(None)) == 1
    assert await count(mysql, class_memberships, m.student_id == w["emma"]["student_id"]) == 1
    assert (
        await count(
            mysql, account_center_sessions, account_center_sessions.c.student_id == w["noah"]["student_id"]
        )
        == 1
    )


async def test_a_budget_spent_mid_telemetry_leaves_it_processing_and_the_next_run_finishes(deps, mysql):
    w = await world(mysql, n_events=100)
    tight = deps.with_settings(
        learner_erase_chunk_size=10, learner_erase_budget_s=1e-6, learner_erase_pause_s=0
    )
    emma = events.c.learner_id == w["emma"]["learner_id"]

    login = account_center_sessions.c.student_id == w["emma"]["student_id"]

    # each run gets one chunk: the login first, then telemetry
    first = await erase_due.run(tight, Sweep())
    assert (first["erased"], first["unfinished"], first["rows_deleted"]) == (0, 1, 1)
    assert (await count(mysql, account_center_sessions, login), await count(mysql, events, emma)) == (0, 100)
    second = await erase_due.run(tight, Sweep())
    assert (second["unfinished"], second["rows_deleted"]) == (1, 10)
    assert await count(mysql, events, emma) == 90
    assert (await request_row(mysql, w["request_id"])).status == "processing"

    # a request left processing is taken again, whatever its due date
    rest = await erase_due.run(
        deps.with_settings(learner_erase_chunk_size=10, learner_erase_pause_s=0), Sweep()
    )
    assert rest["erased"] == 1
    assert await count(mysql, events, emma) == 0
    assert await count(mysql, events) == 30  # Noah's
    assert (await request_row(mysql, w["request_id"])).status == "completed"


async def test_two_runs_at_once_erase_once(deps, mysql):
    w = await world(mysql, n_events=200)
    slow = deps.with_settings(learner_erase_chunk_size=10, learner_erase_pause_s=0.01)
    mine = await snapshot(mysql)

    results = await asyncio.gather(
        erase_due.run(slow, Sweep()),
        erase_due.run(slow, Sweep()),
        erase.run(slow, LearnerErasureRef(request_id=w["request_id"])),
    )

    assert sum(res["erased"] for res in results) == 1
    assert (
        sum(res["rows_deleted"] for res in results)
        == sum(len(v) for v in rows_of(mine, w["emma"]).values()) - 2
    )
    assert (await request_row(mysql, w["request_id"])).status == "completed"
    assert await count(mysql, events) == 30


async def test_a_request_not_yet_due_waits_for_the_sweep_but_not_for_the_queued_job(deps, mysql):
    w = await world(mysql, due_at=ago(days=-10).replace(tzinfo=None))

    assert (await erase_due.run(deps, Sweep()))["erased"] == 0
    assert (await request_row(mysql, w["request_id"])).status == "pending"

    assert (await erase.run(deps, LearnerErasureRef(request_id=w["request_id"])))["erased"] == 1
    assert (await request_row(mysql, w["request_id"])).status == "completed"
    # again: nothing to do
    assert (await erase.run(deps, LearnerErasureRef(request_id=w["request_id"])))["erased"] == 0


async def test_rejected_and_completed_requests_are_never_touched(deps, mysql):
    w = await world(mysql, status="rejected", rejection_reason="not the parent")
    done = await add_request(mysql, w["noah"]["learner_id"], w["parent_id"], status="completed")
    before = await snapshot(mysql)

    assert (await erase_due.run(deps, Sweep()))["erased"] == 0
    with pytest.raises(Permanent, match="rejected"):
        await erase.run(deps, LearnerErasureRef(request_id=w["request_id"]))
    assert (await erase.run(deps, LearnerErasureRef(request_id=done)))["erased"] == 0

    assert differences(before, await snapshot(mysql)) == {}


async def test_unknown_learner_is_completed_with_a_note(deps, mysql):
    w = await world(mysql)
    unknown = await add_request(mysql, "00000000-0000-4000-8000-000000000000", w["parent_id"], reason=None)
    before = await snapshot(mysql)

    summary = await erase.run(deps, LearnerErasureRef(request_id=unknown))

    assert (summary["erased"], summary["learners_not_found"], summary["rows_deleted"]) == (1, 1, 0)
    request = await request_row(mysql, unknown)
    assert request.status == "completed" and "no learner with this id was found" in request.reason
    assert set(differences(before, await snapshot(mysql))) == {"account_center.learner_erasure_requests"}


async def test_unknown_request_fails_clearly(deps, mysql):
    with pytest.raises(NotFound, match="no learner erasure request 424242"):
        await erase.run(deps, LearnerErasureRef(request_id=424242))


async def test_without_the_table_the_jobs_say_so_once_and_do_nothing(deps, mysql, settings):
    from structlog.testing import capture_logs

    schema = f"{settings.pickatale_db_prefix}account_center"
    async with mysql.connect() as conn:
        await conn.exec_driver_sql(f"RENAME TABLE {schema}.learner_erasure_requests TO {schema}.ler_moved")
    try:
        with capture_logs() as logs:
            due = await erase_due.run(deps, Sweep())
            one = await erase.run(deps, LearnerErasureRef(request_id=1))
    finally:
        async with mysql.connect() as conn:
            await conn.exec_driver_sql(
                f"RENAME TABLE {schema}.ler_moved TO {schema}.learner_erasure_requests"
            )
    assert set(due.values()) == set(one.values()) == {0}
    lines = [e for e in logs if e["event"] == "learner_erasure_unavailable"]
    assert len(lines) == 2
    assert lines[0]["reason"].startswith("table account_center.learner_erasure_requests is missing")


async def test_the_demo_request_is_erased_by_a_sweep(deps, mysql):
    from demo.learners import seed_demo

    async with mysql.begin() as conn:
        demo = await seed_demo(conn)
    before = await snapshot(mysql)

    assert (await erase_due.run(deps, Sweep()))["erased"] == 1

    request = await request_row(mysql, demo["request_id"])
    assert request.status == "completed"
    assert request.reason == "[erased] is moving schools; please erase her reading data."
    assert await count(mysql, events) == 30  # the other learner's
    owned = rows_of(before, demo)["telemetry.events"]
    left = (await snapshot(mysql))["telemetry.events"]
    assert len(owned) == 30 and not owned & set(left)


async def test_other_learners_keep_writing_while_a_learner_is_erased(deps, mysql):
    w = await world(mysql, n_events=3000)
    # 30 chunks with a 0.05 s pause after each: the telemetry step lasts at least 1.5 s
    slow = deps.with_settings(learner_erase_chunk_size=100, learner_erase_pause_s=0.05)
    noah = w["noah"]["learner_id"]
    waits: list[float] = []
    erasing, done = asyncio.Event(), asyncio.Event()

    async def writer() -> None:
        await erasing.wait()
        while not done.is_set():
            started = time.monotonic()
            async with mysql.begin() as conn:
                await conn.execute(
                    events.insert().values(
                        event_id=str(uuid.uuid4()),
                        learner_id=noah,
                        session_id="live",
                        event_type="page_turned",
                        client_ts=0,
                        created_at=ago(seconds=0).replace(tzinfo=None),
                    )
                )
            waits.append(time.monotonic() - started)
            await asyncio.sleep(0.01)

    async def eraser() -> dict[str, int]:
        erasing.set()
        try:
            return await erase.run(slow, LearnerErasureRef(request_id=w["request_id"]))
        finally:
            done.set()

    summary, _ = await asyncio.gather(eraser(), writer())

    assert summary["erased"] == 1
    assert len(waits) >= 20, "the writer should have inserted all through the erasure"
    # A bound on lock waits, not a speed test (as the purge's test): each chunk is a READ COMMITTED
    # transaction locking only the erased learner's rows, and the request's row lock is on another
    # table, so an insert of another learner's event never waits on the erasure; one that did would
    # wait for most of its 1.5 s or more.
    assert max(waits) < 2.0, f"longest insert waited {max(waits):.2f} s"
    assert await count(mysql, events, events.c.learner_id == noah) == 30 + len(waits)

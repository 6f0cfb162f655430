"""lifecycle.detect on real PostgreSQL: each rule, once, under races, after missed days, incrementally."""

import asyncio
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest

from db import pinteach as t
from jobfleet.payloads import LifecycleRun
from jobs.deps import Deps
from jobs.lifecycle import detect
from jobs.lifecycle.progress import Progress
from tests.factories import PinTeach, ago, ahead
from workers.marks import RedisMarks

pytestmark = pytest.mark.asyncio
ev = t.student_lifecycle_events.c


async def run(deps: Deps, teacher_id=None) -> dict[str, int]:
    return await detect.run(deps, LifecycleRun(teacher_id=teacher_id))


async def since(marks: RedisMarks):
    return Progress.from_doc(await marks.get(detect.MARK)).since


async def move_mark(marks: RedisMarks, to) -> None:
    await marks.set(detect.MARK, Progress(since=to).doc())


async def events(seed: PinTeach, event_type: str, student_id=None) -> list:
    where = [ev.event_type == event_type] + ([ev.student_id == student_id] if student_id else [])
    return await seed.rows(t.student_lifecycle_events, *where, order_by=ev.occurred_at)


async def student_with(seed: PinTeach, *, teacher=None, enrollment: dict | None = None, **kw) -> dict:
    teacher = teacher or await seed.teacher()
    student = await seed.student(teacher, **kw)
    service = await seed.service(teacher)
    enrollment_id = None
    if enrollment is not None:
        enrollment_id = await seed.enrollment(service, student, teacher, **enrollment)
    return {"teacher": teacher, "student": student, "service": service, "enrollment": enrollment_id}


async def held(seed: PinTeach, ids: dict, *ends: timedelta, status: str = "completed") -> None:
    for end in ends:
        await seed.session(
            ids["service"],
            ids["teacher"],
            student_id=ids["student"],
            enrollment_id=ids["enrollment"],
            ends_at=ago(seconds=end.total_seconds()),
            status=status,
        )


async def test_gap_once_per_gap_with_a_teacher_notification_naming_no_one(deps, seed):
    ids = await student_with(seed, enrollment={})
    await held(seed, ids, timedelta(days=20))

    counts = await run(deps)
    assert counts["gap_detected"] == 1 and counts["churned"] == 0
    assert (await run(deps))["gap_detected"] == 0  # the same gap, not again

    (event,) = await events(seed, "gap_detected")
    assert event.metadata["days_without_session"] == 20
    note = await seed.row(t.notifications)
    assert (note.recipient_type, note.type, note.teacher_id, note.student_id) == (
        "teacher",
        "student.gap_detected",
        ids["teacher"],
        ids["student"],
    )
    assert note.payload == {
        "lifecycle_event_id": str(event.id),
        "student_id": str(ids["student"]),
        "days_without_session": 20,
    }
    student = await seed.row(t.students, t.students.c.id == ids["student"])
    for text in (note.title, note.body, str(note.payload)):
        assert student.name not in text and student.email not in text

    # the gap was reported 19 days ago; the student came back 16 days ago and went quiet: a new gap
    async with seed.engine.begin() as conn:
        await conn.execute(t.student_lifecycle_events.update().values(occurred_at=ago(days=19)))
    await held(seed, ids, timedelta(days=16))
    assert (await run(deps))["gap_detected"] == 1
    assert len(await events(seed, "gap_detected")) == 2


async def test_no_gap_with_a_booking_ahead_or_a_recent_session_or_per_teacher_threshold(deps, seed):
    booked = await student_with(seed, enrollment={})
    await held(seed, booked, timedelta(days=30))
    await held(seed, booked, -timedelta(days=3), status="scheduled")
    recent = await student_with(seed, enrollment={})
    await held(seed, recent, timedelta(days=5))
    strict = await student_with(seed, enrollment={})
    await seed.insert(t.retention_settings, teacher_id=strict["teacher"], gap_days=3)
    await held(seed, strict, timedelta(days=5))

    assert (await run(deps))["gap_detected"] == 1
    (event,) = await events(seed, "gap_detected")
    assert event.student_id == strict["student"] and event.metadata["gap_days"] == 3


async def test_churn_sets_the_status_once_and_notifies(deps, seed):
    ids = await student_with(seed, enrollment={"status": "expired", "valid_until": ago(days=70)})
    await held(seed, ids, timedelta(days=61))

    assert (await run(deps))["churned"] == 1
    assert (await run(deps))["churned"] == 0
    assert (await seed.row(t.students, t.students.c.id == ids["student"])).status == "churned"
    note = await seed.row(t.notifications)
    assert (note.type, note.student_id, note.payload["days_without_session"]) == (
        "student.churned",
        ids["student"],
        61,
    )


async def test_no_churn_with_an_active_enrollment_a_booking_or_a_pause_or_when_disabled(deps, seed):
    active = await student_with(seed, enrollment={})
    await held(seed, active, timedelta(days=90))  # a gap, not churn
    booked = await student_with(seed)
    await held(seed, booked, timedelta(days=90))
    await held(seed, booked, -timedelta(days=1), status="scheduled")
    paused = await student_with(seed, status="paused")
    await held(seed, paused, timedelta(days=90))
    off = await student_with(seed)
    await seed.insert(t.retention_settings, teacher_id=off["teacher"], enabled=False)
    await held(seed, off, timedelta(days=90))

    counts = await run(deps)
    assert (counts["churned"], counts["gap_detected"]) == (0, 1)


async def test_reactivated_after_booking_or_completing_again(deps, seed):
    booking = await student_with(seed)
    await held(seed, booking, timedelta(days=100))
    completing = await student_with(seed)
    await held(seed, completing, timedelta(days=100))
    assert (await run(deps))["churned"] == 2
    async with seed.engine.begin() as conn:  # they churned yesterday
        await conn.execute(t.student_lifecycle_events.update().values(occurred_at=ago(days=1)))
    await held(seed, booking, -timedelta(days=2), status="scheduled")
    await held(seed, completing, timedelta(hours=2))
    counts = await run(deps)
    assert (counts["reactivated"], counts["churned"]) == (2, 0)
    for ids in (booking, completing):
        assert (await seed.row(t.students, t.students.c.id == ids["student"])).status == "active"
    assert (await run(deps))["reactivated"] == 0


async def test_every_milestone_reached_once_even_after_missed_days(deps, seed):
    ids = await student_with(seed, enrollment={"sessions_total": 100})
    await seed.insert(t.retention_settings, teacher_id=ids["teacher"], milestones=[3, 5, 50])
    await held(seed, ids, *(timedelta(days=d) for d in range(1, 7)))  # six sessions, never swept

    assert (await run(deps))["milestone_reached"] == 2
    assert sorted(e.metadata["milestone"] for e in await events(seed, "milestone_reached")) == [3, 5]
    assert (await run(deps))["milestone_reached"] == 0


async def test_streak_of_consecutive_weeks_in_the_students_time_zone(deps, seed):
    # Sundays 23:30 in Tokyo are Sundays 14:30 UTC: both fall in the same ISO week either way, so
    # use Monday 00:30 Tokyo, which is still Sunday in UTC: the weeks differ by time zone
    ids = await student_with(seed, enrollment={}, timezone="Asia/Tokyo")
    await seed.insert(t.retention_settings, teacher_id=ids["teacher"], streak_weeks=3)
    monday = (ago(days=7 * 5)).replace(hour=0, minute=0, second=0, microsecond=0)
    monday -= timedelta(days=monday.weekday())
    for week in range(3):
        # Monday 00:30 in Tokyo = Sunday 15:30 UTC of the week before
        start = monday + timedelta(weeks=week) - timedelta(hours=8, minutes=30)
        await seed.session(
            ids["service"],
            ids["teacher"],
            student_id=ids["student"],
            enrollment_id=ids["enrollment"],
            ends_at=start + timedelta(hours=1),
            status="completed",
        )
    assert (await run(deps))["streak_achieved"] == 1
    (event,) = await events(seed, "streak_achieved")
    assert event.metadata["weeks"] == 3 and event.metadata["first_week"] == monday.date().isoformat()
    assert (await run(deps))["streak_achieved"] == 0


async def test_two_concurrent_runs_write_each_event_once(deps, seed):
    teacher = await seed.teacher()
    await seed.insert(t.retention_settings, teacher_id=teacher, milestones=[1, 2])
    for _ in range(30):
        gap = await student_with(seed, teacher=teacher, enrollment={})
        await held(seed, gap, timedelta(days=20), timedelta(days=21))
        churn = await student_with(seed, teacher=teacher)
        await held(seed, churn, timedelta(days=70))
    small = deps.with_settings(sweep_batch_size=7)

    first, second = await asyncio.gather(run(small), run(small))
    for kind, expected in (("gap_detected", 30), ("churned", 30), ("milestone_reached", 30 * 2 + 30)):
        assert first[kind] + second[kind] == expected, kind
        assert len(await events(seed, kind)) == expected
    assert await seed.count(t.notifications) == 60


async def test_on_demand_for_one_teacher(deps, seed):
    mine = await student_with(seed, enrollment={})
    await held(seed, mine, timedelta(days=20))
    other = await student_with(seed, enrollment={})
    await held(seed, other, timedelta(days=20))

    counts = await run(deps, teacher_id=mine["teacher"])
    assert (counts["gap_detected"], counts["students_checked"]) == (1, 1)
    (event,) = await events(seed, "gap_detected")
    assert event.student_id == mine["student"]


async def test_incremental_run_sees_only_what_changed_since_the_mark_and_catches_up_after_missed_days(
    deps, seed, redis
):
    marks = RedisMarks(redis)
    tracked = deps.with_marks(marks)
    quiet = await student_with(seed, enrollment={})
    await held(seed, quiet, timedelta(days=3))
    assert (await run(tracked))["students_checked"] >= 1  # no mark yet: every student
    mark = await since(marks)
    assert mark is not None

    # nothing changed: nobody is looked at
    assert (await run(tracked))["students_checked"] == 0

    # the scheduler was down for 20 days: pretend the last run was then
    await move_mark(marks, mark - timedelta(days=20))
    late = await student_with(seed, enrollment={})
    await held(seed, late, timedelta(days=17))  # its gap began 3 days ago, during the missed days
    counts = await run(tracked)
    assert counts["gap_detected"] == 1
    (event,) = await events(seed, "gap_detected")
    assert event.student_id == late["student"]


async def test_a_threshold_crossed_by_time_alone_is_found_without_any_write(deps, seed, redis):
    marks = RedisMarks(redis)
    tracked = deps.with_marks(marks)
    ids = await student_with(seed, enrollment={})
    await held(seed, ids, timedelta(days=13, hours=23))
    assert (await run(tracked))["gap_detected"] == 0
    # two hours later (moved by moving the mark back instead of waiting): the gap is due
    await move_mark(marks, (await since(marks)) - timedelta(hours=2))
    async with seed.engine.begin() as conn:  # the session is now 14 days and 1 hour old
        await conn.execute(
            t.class_sessions.update().values(
                ends_at=t.class_sessions.c.ends_at - timedelta(hours=2),
                starts_at=t.class_sessions.c.starts_at - timedelta(hours=2),
            )
        )
    # updated_at is untouched by that edit's meaning; the candidate is found by its ends_at window
    assert (await run(tracked))["gap_detected"] == 1


@asynccontextmanager
async def table_moved_away(engine, name: str):
    async with engine.begin() as conn:
        await conn.exec_driver_sql(f"ALTER TABLE {name} RENAME TO {name}_away")
    try:
        yield
    finally:
        async with engine.begin() as conn:
            await conn.exec_driver_sql(f"ALTER TABLE {name}_away RENAME TO {name}")


async def test_without_the_migration_it_says_so_and_changes_nothing(deps, seed, caplog):
    ids = await student_with(seed)
    await held(seed, ids, timedelta(days=100))
    async with table_moved_away(seed.engine, "retention_settings"):
        counts = await run(deps)
    assert counts["migration_missing"] == 1 and counts["churned"] == 0
    assert await seed.count(t.student_lifecycle_events) == 0
    assert (await seed.row(t.students)).status == "active"


async def test_a_time_zone_postgresql_does_not_know_counts_as_utc_and_fails_nothing(deps, seed):
    odd = await student_with(seed, enrollment={}, timezone="Mars/Olympus_Mons")
    await seed.insert(t.retention_settings, teacher_id=odd["teacher"], streak_weeks=2, milestones=[2])
    await held(seed, odd, timedelta(days=7), timedelta(days=14))
    other = await student_with(seed, enrollment={})
    await held(seed, other, timedelta(days=20))
    counts = await run(deps)
    assert (counts["streak_achieved"], counts["milestone_reached"], counts["gap_detected"]) == (1, 1, 1)


async def test_a_run_cut_short_by_its_budget_keeps_the_old_mark_and_the_next_goes_on(deps, seed, redis):
    marks = RedisMarks(redis)
    teacher = await seed.teacher()
    for _ in range(5):
        ids = await student_with(seed, teacher=teacher, enrollment={})
        await held(seed, ids, timedelta(days=20))
    short = deps.with_marks(marks).with_settings(sweep_batch_size=2, lifecycle_budget_s=1e-9)

    first = await run(short)
    assert (first["students_checked"], first["gap_detected"], first["complete"]) == (2, 2, 0)
    progress = Progress.from_doc(await marks.get(detect.MARK))
    assert progress.since is None and progress.after is not None  # the pass goes on after that student
    runs = [await run(short) for _ in range(2)]
    assert [r["gap_detected"] for r in runs] == [2, 1] and runs[-1]["complete"] == 1
    done = Progress.from_doc(await marks.get(detect.MARK))
    # the next pass starts where the first run of this one began
    assert (done.since, done.after) == (progress.next_since, None)
    assert len(await events(seed, "gap_detected")) == 5


async def test_a_churned_student_taking_a_group_seat_is_reactivated_by_an_incremental_run(deps, seed, redis):
    tracked = deps.with_marks(RedisMarks(redis))
    ids = await student_with(seed, enrollment={"status": "expired"})
    await held(seed, ids, timedelta(days=100))
    assert (await run(tracked))["churned"] == 1
    group = await seed.session(
        ids["service"],
        ids["teacher"],
        ends_at=ahead(days=5),
        updated_at=ago(days=30),
        created_at=ago(days=30),
    )
    await seed.participant(group, ids["student"], ids["enrollment"])
    counts = await run(tracked)
    assert (counts["students_checked"], counts["reactivated"]) == (1, 1)


async def test_a_run_killed_half_way_leaves_whole_batches_and_the_rerun_completes_once(deps, seed, redis):
    tracked = deps.with_marks(RedisMarks(redis)).with_settings(sweep_batch_size=3)
    teacher = await seed.teacher()
    for _ in range(60):
        ids = await student_with(seed, teacher=teacher, enrollment={})
        await held(seed, ids, timedelta(days=20))

    task = asyncio.create_task(run(tracked))
    async with asyncio.timeout(60):
        while not await events(seed, "gap_detected"):  # killed once some batches have committed
            await asyncio.sleep(0.005)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    written = len(await events(seed, "gap_detected"))
    assert written > 0 and written % 3 == 0  # whole batches: each is one transaction
    assert Progress.from_doc(await RedisMarks(redis).get(detect.MARK)).since is None  # no pass finished

    assert (await run(tracked))["gap_detected"] == 60 - written
    assert len(await events(seed, "gap_detected")) == 60
    assert await seed.count(t.notifications) == 60


async def test_a_student_churned_by_hand_is_reactivated_only_by_what_came_after(deps, seed):
    ids = await student_with(seed, status="churned", updated_at=ago(days=5))
    await held(seed, ids, timedelta(days=30))  # before the status was set: not a comeback
    assert (await run(deps))["reactivated"] == 0
    await held(seed, ids, timedelta(days=1))  # after it
    assert (await run(deps))["reactivated"] == 1

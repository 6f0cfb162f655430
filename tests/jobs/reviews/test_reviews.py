"""reviews.request_due and reviews.expire on real PostgreSQL."""

import asyncio
import re
from datetime import timedelta

import pytest
from structlog.testing import capture_logs

from db import pinteach as t
from jobfleet.payloads import ReviewRun, Sweep
from jobs.deps import Deps
from jobs.reviews import expire, request_due
from jobs.sessions import auto_complete
from tests.factories import PinTeach, ago, ahead, now
from tests.jobs.lifecycle.test_detect import held, student_with, table_moved_away

pytestmark = pytest.mark.asyncio
rr = t.review_requests.c


async def ask(deps: Deps, teacher_id=None) -> dict[str, int]:
    return await request_due.run(deps, ReviewRun(teacher_ids=(teacher_id,) if teacher_id else None))


async def review_request(seed: PinTeach, ids: dict, expires_at, status: str = "pending", channel="in_app"):
    return await seed.insert(
        t.review_requests,
        teacher_id=ids["teacher"],
        student_id=ids["student"],
        channel=channel,
        token=request_due.new_token(),
        status=status,
        expires_at=expires_at,
    )


async def student_done(seed: PinTeach, sessions: int, *, teacher=None, **settings) -> dict:
    ids = await student_with(seed, teacher=teacher, enrollment={})
    if teacher is None:
        await seed.insert(t.review_settings, teacher_id=ids["teacher"], **{"auto_request": True, **settings})
    await held(seed, ids, *(timedelta(days=d) for d in range(sessions, 0, -1)))
    return ids


async def test_one_request_once_enough_sessions_with_a_random_token_and_a_student_notification(deps, seed):
    ids = await student_done(seed, 3)
    with capture_logs() as logs:
        assert await ask(deps) == {"requested": 1, "notified": 1}
        assert await ask(deps) == {"requested": 0, "notified": 0}

    request = await seed.row(t.review_requests)
    assert (request.teacher_id, request.student_id, request.channel, request.status) == (
        ids["teacher"],
        ids["student"],
        "in_app",
        "pending",
    )
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", request.token)  # 32 random bytes, URL-safe
    assert abs(request.expires_at - (now() + timedelta(days=14))) < timedelta(minutes=1)
    latest = await seed.rows(t.class_sessions, order_by=t.class_sessions.c.ends_at.desc())
    assert request.session_id == latest[0].id
    note = await seed.row(t.notifications)
    assert (note.recipient_type, note.type, note.student_id) == (
        "student",
        "review.requested",
        ids["student"],
    )
    assert note.payload["review_request_id"] == str(request.id)
    assert request.token not in str(note.payload) + note.title + note.body
    assert request.token not in repr(logs)


async def test_no_request_below_the_threshold_without_settings_or_with_auto_request_off(deps, seed):
    await student_done(seed, 2)
    await student_done(seed, 5, after_completed_sessions=6)
    await student_done(seed, 5, auto_request=False)
    no_settings = await student_with(seed, enrollment={})
    await held(seed, no_settings, *(timedelta(days=d) for d in range(1, 6)))
    assert await ask(deps) == {"requested": 0, "notified": 0}


async def test_email_channel_and_expiry_from_the_settings(deps, seed):
    await student_done(seed, 1, after_completed_sessions=1, channel="email", expires_after_days=3)
    assert await ask(deps) == {"requested": 1, "notified": 0}
    request = await seed.row(t.review_requests)
    assert request.channel == "email"
    assert abs(request.expires_at - (now() + timedelta(days=3))) < timedelta(minutes=1)
    assert await seed.count(t.notifications) == 0


@pytest.mark.parametrize(("status", "again"), [("completed", 0), ("dismissed", 0), ("expired", 1)])
async def test_never_a_second_while_one_is_pending_completed_or_dismissed(deps, seed, status, again):
    ids = await student_done(seed, 3)
    await review_request(seed, ids, ago(days=1), status)
    assert (await ask(deps))["requested"] == again


async def test_two_concurrent_runs_request_once_per_student(deps, seed):
    first = await student_done(seed, 3)
    for _ in range(40):
        await student_done(seed, 3, teacher=first["teacher"])
    small = deps.with_settings(sweep_batch_size=6)
    a, b = await asyncio.gather(ask(small), ask(small))
    assert a["requested"] + b["requested"] == 41
    assert await seed.count(t.review_requests) == 41
    assert await seed.count(t.notifications) == 41


async def test_a_run_for_one_teacher(deps, seed):
    mine = await student_done(seed, 3)
    await student_done(seed, 3)
    assert (await ask(deps, mine["teacher"]))["requested"] == 1
    assert (await seed.row(t.review_requests)).student_id == mine["student"]


async def test_expire_pending_requests_past_expiry_only_after_missed_days(deps, seed):
    ids = await student_with(seed)

    overdue = [await review_request(seed, ids, ago(days=d)) for d in range(1, 12)]  # ticks missed for days
    future = await review_request(seed, ids, ahead(days=1))
    done = await review_request(seed, ids, ago(days=3), "completed")
    small = deps.with_settings(sweep_batch_size=4)

    a, b = await asyncio.gather(expire.run(small, Sweep()), expire.run(small, Sweep()))
    assert a["expired"] + b["expired"] == len(overdue)
    statuses = {row.id: row.status for row in await seed.rows(t.review_requests)}
    assert {statuses[i] for i in overdue} == {"expired"}
    assert (statuses[future], statuses[done]) == ("pending", "completed")
    assert await expire.run(deps, Sweep()) == {"expired": 0}


async def test_without_the_migration_both_say_so_and_change_nothing(deps, seed):
    await student_done(seed, 3)
    async with table_moved_away(seed.engine, "review_requests"):
        assert (await ask(deps))["migration_missing"] == 1
        assert (await expire.run(deps, Sweep()))["migration_missing"] == 1
    assert await seed.count(t.review_requests) == 0
    assert await seed.count(t.notifications) == 0


async def test_auto_completion_asks_only_for_teachers_who_ask_automatically(deps, seed):
    asking = await student_with(seed, enrollment={"sessions_scheduled": 1})
    await seed.insert(t.review_settings, teacher_id=asking["teacher"], auto_request=True)
    quiet = await student_with(seed, enrollment={"sessions_scheduled": 1})
    await seed.insert(t.review_settings, teacher_id=quiet["teacher"], auto_request=False)
    bare = await student_with(seed, enrollment={"sessions_scheduled": 1})
    for ids in (asking, quiet, bare):  # each ended an hour ago: due for completion
        await seed.session(
            ids["service"], ids["teacher"], student_id=ids["student"], enrollment_id=ids["enrollment"]
        )

    done = await auto_complete.run(deps, Sweep())
    assert done["completed"] == 3
    assert [(f.job, f.payload) for f in done.follow_ups] == [
        ("reviews.request_due", {"teacher_ids": [str(asking["teacher"])]})
    ]


async def test_without_the_migration_auto_completion_asks_for_nothing_and_completes(deps, seed):
    ids = await student_with(seed, enrollment={"sessions_scheduled": 1})
    await seed.session(
        ids["service"], ids["teacher"], student_id=ids["student"], enrollment_id=ids["enrollment"]
    )
    async with table_moved_away(seed.engine, "review_settings"):
        done = await auto_complete.run(deps, Sweep())
    assert done["completed"] == 1 and done.follow_ups == ()

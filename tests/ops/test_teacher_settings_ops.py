"""Ops for the jobs that follow the teachers' own settings: audit checks, domain health, /metrics."""

import re
from datetime import timedelta

from db import pinteach as t
from jobfleet.payloads import LifecycleRun, ReviewRun, Sweep
from jobs.lifecycle import detect
from jobs.retention import teacher_policies
from jobs.reviews import expire, request_due
from ops.audit import audit_pinteach
from tests.factories import PinTeach, ago, ahead
from tests.jobs.lifecycle.test_detect import held, student_with, table_moved_away
from tests.jobs.reviews.test_reviews import review_request
from tests.ops.support import dashboard
from tests.ops.test_metrics_and_health import scrape


async def test_audit_names_each_violation_and_the_jobs_leave_none(deps, pg):
    seed = PinTeach(pg)
    ids = await student_with(seed, status="churned")
    # a booking made two days ago by a churned student, not yet seen by lifecycle.detect
    booking = await seed.session(
        ids["service"],
        ids["teacher"],
        student_id=ids["student"],
        ends_at=ahead(days=3),
        created_at=ago(days=2),
    )
    for _ in range(2):
        await seed.insert(
            t.student_lifecycle_events,
            teacher_id=ids["teacher"],
            student_id=ids["student"],
            event_type="milestone_reached",
            metadata={"milestone": 10},
        )
    stale = await review_request(seed, ids, ago(days=2))
    await review_request(seed, ids, ago(hours=2))  # past expiry by less than a day: not yet a violation

    found = {v.check: v for v in await audit_pinteach(pg)}
    assert set(found) == {
        "lifecycle_duplicate_milestone",
        "churned_with_future_booking",
        "review_request_past_expiry",
    }
    assert found["lifecycle_duplicate_milestone"].ids == {
        "student_id": ids["student"],
        "milestone": "10",
        "events": 2,
    }
    assert found["churned_with_future_booking"].ids == {
        "student_id": ids["student"],
        "session_id": str(booking),
    }
    assert found["review_request_past_expiry"].ids["review_request_id"] == stale

    # the jobs themselves put it right (the duplicate came from elsewhere: delete one)
    async with pg.begin() as conn:
        await conn.exec_driver_sql(
            "DELETE FROM student_lifecycle_events WHERE ctid = (SELECT min(ctid) FROM student_lifecycle_events)"
        )
    await detect.run(deps, LifecycleRun())
    await expire.run(deps, Sweep())
    assert await audit_pinteach(pg) == []


async def test_a_fleet_run_of_all_three_jobs_keeps_the_invariants(deps, pg):
    seed = PinTeach(pg)
    teacher = await seed.teacher()
    await seed.insert(t.retention_settings, teacher_id=teacher, milestones=[1, 2, 3])
    await seed.insert(t.review_settings, teacher_id=teacher, auto_request=True, after_completed_sessions=2)
    for _ in range(5):
        ids = await student_with(seed, teacher=teacher, enrollment={"sessions_scheduled": 0})
        await held(seed, ids, *(timedelta(days=d) for d in (70, 40, 20)))
    for _ in range(2):
        await detect.run(deps, LifecycleRun())
        await request_due.run(deps, ReviewRun())
        await teacher_policies.run(deps, Sweep())
    assert len(await seed.rows(t.student_lifecycle_events)) == 5 * (3 + 1)  # milestones, a gap
    assert await audit_pinteach(pg) == []


async def test_audit_skips_the_review_check_without_the_migration(pg):
    async with table_moved_away(pg, "review_requests"):
        assert await audit_pinteach(pg) == []


async def test_health_and_metrics_show_the_backlogs(settings, redis, pg, mysql):
    seed = PinTeach(pg)
    ids = await student_with(seed)
    await review_request(seed, ids, ago(hours=3))
    await review_request(seed, ids, ago(hours=1))
    await review_request(seed, ids, ahead(days=1))
    await review_request(seed, ids, ago(days=9), status="completed")
    await seed.insert(
        t.data_retention_settings, teacher_id=ids["teacher"], erase_deleted_students_after_days=10
    )
    await seed.student(ids["teacher"], deleted_at=ago(days=11))
    await seed.student(ids["teacher"], deleted_at=ago(days=9))

    async with dashboard(settings) as client:
        page = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", (await client.get("/health")).text))
        m = await scrape(client)
    assert "Review requests still pending past expiry 2 reviews.expire" in page
    assert "Soft-deleted students past their teacher's retention, no erasure request 1" in page.replace(
        "&#39;", "'"
    )
    assert m[("jobfleet_domain_review_requests_past_expiry", ())] == 2
    assert (
        3 * 3600 - 10 < m[("jobfleet_domain_oldest_review_request_past_expiry_seconds", ())] < 3 * 3600 + 120
    )
    assert m[("jobfleet_domain_deleted_students_due_for_erasure", ())] == 1


async def test_health_without_the_migration_leaves_those_lines_unknown(settings, redis, pg, mysql):
    async with table_moved_away(pg, "review_requests"), dashboard(settings) as client:
        m = await scrape(client)
    assert m[("jobfleet_domain_health_up", ())] == 1
    assert ("jobfleet_domain_review_requests_past_expiry", ()) not in m
    assert m[("jobfleet_domain_deleted_students_due_for_erasure", ())] == 0

"""The demo data of the three jobs that follow teachers' settings: each visibly acts on its first run."""

from db import pinteach as t
from demo import lifecycle as lifecycle_demo
from demo import reviews as reviews_demo
from demo import teacher_retention as teacher_demo
from jobfleet.payloads import LifecycleRun, ReviewRun, Sweep
from jobs.gdpr import erase_due
from jobs.lifecycle import detect
from jobs.retention import teacher_policies
from jobs.reviews import expire, request_due
from jobs.sessions import auto_complete
from tests.factories import PinTeach


async def test_lifecycle_demo(deps, pg):
    async with pg.begin() as conn:
        ids = await lifecycle_demo.seed_demo(conn)
    counts = await detect.run(deps, LifecycleRun())
    assert {
        k: counts[k]
        for k in ("gap_detected", "churned", "reactivated", "milestone_reached", "streak_achieved")
    } == {
        "gap_detected": 1,
        "churned": 1,
        "reactivated": 1,
        "milestone_reached": 2,
        "streak_achieved": 1,
    }
    statuses = {r.id: r.status for r in await PinTeach(pg).rows(t.students)}
    assert (statuses[ids["churn"]], statuses[ids["back"]]) == ("churned", "active")


async def test_reviews_demo_including_the_follow_up_of_auto_completion(deps, pg):
    async with pg.begin() as conn:
        ids = await reviews_demo.seed_demo(conn)
    assert (await request_due.run(deps, ReviewRun()))["requested"] == 1
    done = await auto_complete.run(deps, Sweep())
    (follow_up,) = done.follow_ups
    assert follow_up.payload == {"teacher_ids": [str(ids["teacher"])]}
    assert (await request_due.run(deps, ReviewRun.model_validate(follow_up.payload)))["requested"] == 1
    assert await expire.run(deps, Sweep()) == {"expired": 1}
    asked = {
        r.student_id
        for r in await PinTeach(pg).rows(t.review_requests, t.review_requests.c.status == "pending")
    }
    assert asked == {ids["asked"], ids["completes"]}


async def test_teacher_retention_demo(deps, pg):
    async with pg.begin() as conn:
        ids = await teacher_demo.seed_demo(conn)
    counts = await teacher_policies.run(deps, Sweep())
    assert {
        k: counts[k]
        for k in (
            "contact_log_deleted",
            "notifications_deleted",
            "session_notes_cleared",
            "erasure_requested",
        )
    } == {
        "contact_log_deleted": 1,
        "notifications_deleted": 1,
        "session_notes_cleared": 1,
        "erasure_requested": 1,
    }
    assert (await erase_due.run(deps, Sweep()))["erased"] == 1
    erased = await PinTeach(pg).row(t.students, t.students.c.id == ids["deleted"])
    assert erased.name == "Erased student"

"""Follow-up jobs: enqueued by the runtime after a job succeeded, never when it failed.

The case in the catalog: sessions.auto_complete asks for reviews.request_due for the teachers whose
students it just completed; the review request that follow-up writes proves it ran after the
completion had committed.
"""

import dataclasses
import json
from datetime import timedelta

from redis.asyncio import Redis

from db import pinteach as t
from jobfleet import keys
from jobfleet.catalog import CATALOG
from jobfleet.producer import Producer
from jobs.deps import Deps
from jobs.followups import FollowUp, Outcome
from tests.factories import PinTeach
from tests.jobs.lifecycle.test_detect import held, student_with
from workers.failures import FailureRecord
from workers.fleet import Fleet
from workers.runner import enqueue_follow_ups
from workers.stats import Stats
from workers.worker import build_worker


async def test_auto_complete_asks_for_review_requests_after_its_commit(settings, redis: Redis, pg):
    seed = PinTeach(pg)
    ids = await student_with(seed, enrollment={"sessions_scheduled": 1})
    await seed.insert(
        t.review_settings, teacher_id=ids["teacher"], auto_request=True, after_completed_sessions=2
    )
    await held(seed, ids, timedelta(days=3))  # one completed already
    await seed.session(  # ended an hour ago: due for completion, the student's second
        ids["service"], ids["teacher"], student_id=ids["student"], enrollment_id=ids["enrollment"]
    )
    other = await student_with(seed)  # a teacher without completions gets nothing
    await seed.insert(
        t.review_settings, teacher_id=other["teacher"], auto_request=True, after_completed_sessions=0
    )

    await Producer(redis).enqueue("sessions.auto_complete")
    await Fleet(settings, [keys.QUEUE_SWEEPS], burst=True, scheduler=False).run()

    request = await seed.row(t.review_requests)
    assert request.student_id == ids["student"]
    runs = await redis.hgetall(keys.STATS_PREFIX + "reviews.request_due")
    assert runs[b"succeeded"] == b"1"
    last = json.loads(await redis.hget(keys.SCHEDULE_LAST_RUN, "reviews.request_due"))
    assert last["counts"] == {"requested": 1, "notified": 1}


async def test_a_failed_job_enqueues_no_follow_up(settings, redis: Redis):
    broken = Deps.from_settings(
        settings.model_copy(update={"pinteach_dsn": "postgresql://postgres@127.0.0.1:1/nowhere"})
    )
    spec = dataclasses.replace(CATALOG["sessions.auto_complete"], max_tries=1)
    worker = build_worker(
        spec.queue,
        deps=broken,
        failures=FailureRecord(redis),
        stats=Stats(),
        specs=[spec],
        burst=True,
        redis_target=settings.redis_target,
        max_jobs=1,
        poll_delay_s=0.01,
        shutdown_grace_s=0,
    )
    job_id = await Producer(redis).enqueue("sessions.auto_complete")
    try:
        await worker.async_run()
    finally:
        await worker.close()
        await broken.close()
    assert await FailureRecord(redis).get(job_id) is not None
    assert await redis.zcard(keys.QUEUE_SWEEPS) == 0


async def test_follow_ups_are_validated_and_a_refused_one_is_logged_not_raised(redis: Redis):
    producer = Producer(redis)
    good = FollowUp("reviews.request_due", {"teacher_ids": ["00000000-0000-0000-0000-000000000001"]})
    await enqueue_follow_ups(producer, Outcome({}, [good]).follow_ups)
    assert await redis.zcard(keys.QUEUE_SWEEPS) == 1
    bad = FollowUp("reviews.request_due", {"teacher_ids": "not a list"})
    await enqueue_follow_ups(producer, (bad,))  # logged as follow_ups_not_enqueued
    assert await redis.zcard(keys.QUEUE_SWEEPS) == 1

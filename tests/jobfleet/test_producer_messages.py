"""The backend's side of scheduled messages: a deferred messages.deliver job, keyed by the message id,
that it cancels when the teacher cancels the message and replaces when they reschedule it."""

import asyncio
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from jobfleet import keys, wire
from jobfleet.producer import Producer


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


async def test_deferred_message_job_can_be_cancelled_and_enqueued_anew(redis):
    producer = Producer(redis)  # the fixture owns the client: no close here
    message_id = str(uuid4())
    scheduled_for = datetime.now(UTC) + timedelta(hours=2)

    job_id = await producer.enqueue(
        "messages.deliver", {"message_id": message_id}, key=message_id, defer_until=scheduled_for
    )

    assert job_id == f"messages.deliver:{message_id}"
    assert await redis.zscore(keys.QUEUE_DEFAULT, job_id) == ms(scheduled_for)
    document = wire.decode(await redis.get(keys.job_key_prefix + job_id))
    assert (document["f"], document["k"]) == ("messages.deliver", {"message_id": message_id})

    # The backend enqueues twice (a retried request): still one job, at the first time.
    later = scheduled_for + timedelta(days=1)
    assert (
        await producer.enqueue(
            "messages.deliver", {"message_id": message_id}, key=message_id, defer_until=later
        )
        == job_id
    )
    assert await redis.zscore(keys.QUEUE_DEFAULT, job_id) == ms(scheduled_for)

    # Reschedule = cancel + enqueue anew.
    assert await producer.cancel(job_id) is True
    assert await redis.zscore(keys.QUEUE_DEFAULT, job_id) is None
    assert await redis.exists(keys.job_key_prefix + job_id) == 0
    assert (
        await producer.enqueue(
            "messages.deliver", {"message_id": message_id}, key=message_id, defer_until=later
        )
        == job_id
    )
    assert await redis.zscore(keys.QUEUE_DEFAULT, job_id) == ms(later)

    # Cancel the message: the job goes, and a second cancel finds nothing. A cancel leaves a
    # "cancelled" in-progress marker for a second, during which the producer refuses to cancel that
    # id again; wait it out (a backend that cancels sooner relies on the message row's status).
    marker_ms = await redis.pttl(keys.in_progress_key_prefix + job_id)
    assert marker_ms <= 1000
    await asyncio.sleep(max(marker_ms, 0) / 1000)
    assert await producer.cancel(job_id) is True
    assert await producer.cancel(job_id) is False
    assert await redis.zcard(keys.QUEUE_DEFAULT) == 0

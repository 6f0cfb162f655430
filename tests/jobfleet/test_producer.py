"""The producer library: validation, idempotent keys, deferral, cancel, bulk, and the wire format."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from jobfleet import keys
from jobfleet.catalog import UnknownJob
from jobfleet.producer import InvalidPayload, Job, Producer, ProducerUnavailable
from workers.fleet import Fleet


@pytest.fixture
def producer(redis: Redis) -> Producer:
    return Producer(redis)


async def test_a_bad_payload_names_the_job_and_the_field_and_reaches_no_redis(producer, redis):
    with pytest.raises(InvalidPayload) as e:
        await producer.enqueue("messages.deliver", {"message_id": "not-a-uuid"})
    assert "'messages.deliver'" in str(e.value) and "message_id" in str(e.value)
    assert e.value.fields == ["message_id"]
    with pytest.raises(InvalidPayload, match="extra_field"):
        await producer.enqueue("messages.deliver", {"message_id": str(uuid.uuid4()), "extra_field": 1})
    with pytest.raises(InvalidPayload, match="message_id: Field required"):
        await producer.enqueue("messages.deliver", {})
    with pytest.raises(UnknownJob, match="unknown job 'messages.send'"):
        await producer.enqueue("messages.send", {})
    assert await redis.dbsize() == 0


async def test_the_wire_format_is_plain_json_in_arqs_layout(producer, redis):
    message_id = uuid.uuid4()
    job_id = await producer.enqueue("messages.deliver", {"message_id": message_id})

    raw = await redis.get(keys.job_key_prefix + job_id)
    document = json.loads(raw)
    assert document["f"] == "messages.deliver" and document["a"] == []
    assert document["k"] == {"message_id": str(message_id)}
    assert isinstance(document["et"], int)
    assert await redis.zscore(keys.QUEUE_DEFAULT, job_id) is not None


async def test_same_key_is_one_job(producer, redis):
    message_id = str(uuid.uuid4())
    first = await producer.enqueue("messages.deliver", {"message_id": message_id}, key=message_id)
    second = await producer.enqueue("messages.deliver", {"message_id": message_id}, key=message_id)
    assert first == second == f"messages.deliver:{message_id}"
    assert await redis.zcard(keys.QUEUE_DEFAULT) == 1


async def test_defer_until_sets_the_run_time_and_cancel_frees_the_key(producer, redis):
    message_id = str(uuid.uuid4())
    at = datetime.now(UTC) + timedelta(hours=2)
    job_id = await producer.enqueue(
        "messages.deliver", {"message_id": message_id}, key=message_id, defer_until=at
    )
    assert await redis.zscore(keys.QUEUE_DEFAULT, job_id) == int(at.timestamp() * 1000)

    assert await producer.cancel(job_id) is True
    assert await redis.exists(keys.job_key_prefix + job_id) == 0
    assert await producer.cancel(job_id) is False

    # rescheduling = cancel + enqueue anew with the same key
    later = at + timedelta(days=1)
    again = await producer.enqueue(
        "messages.deliver", {"message_id": message_id}, key=message_id, defer_until=later
    )
    assert again == job_id and await redis.zscore(keys.QUEUE_DEFAULT, job_id) == int(later.timestamp() * 1000)


async def test_a_running_job_cannot_be_cancelled(producer, redis):
    job_id = await producer.enqueue("fleet.noop")
    await redis.set(keys.in_progress_key_prefix + job_id, b"1")
    assert await producer.cancel(job_id) is False
    assert await redis.exists(keys.job_key_prefix + job_id) == 1


async def test_defer_arguments_are_checked(producer):
    with pytest.raises(ValueError, match="timezone-aware"):
        await producer.enqueue("fleet.noop", defer_until=datetime(2030, 1, 1))
    with pytest.raises(ValueError, match="not both"):
        await producer.enqueue("fleet.noop", defer_until=datetime.now(UTC), defer_by=5)


async def test_bulk_enqueue_validates_everything_first(producer, redis):
    jobs = [Job("fleet.sleep", {"ms": i}) for i in range(50)]
    ids = await producer.enqueue_many(jobs)
    assert len(set(ids)) == 50 and await redis.zcard(keys.QUEUE_DEFAULT) == 50
    with pytest.raises(InvalidPayload):
        await producer.enqueue_many([Job("fleet.sleep", {"ms": 1}), Job("fleet.sleep", {"ms": -1})])
    assert await redis.zcard(keys.QUEUE_DEFAULT) == 50


async def test_oversized_payloads_are_refused(producer, redis):
    with pytest.raises(InvalidPayload, match="policy: String should have at most 100 characters"):
        await producer.enqueue("telemetry.purge", {"policy": "x" * 10_000})
    assert await redis.dbsize() == 0


async def test_a_redis_that_is_away_raises_a_clear_error():
    producer = Producer.from_url("redis://127.0.0.1:1/0")
    with pytest.raises(ProducerUnavailable, match=r"'fleet\.noop' was not enqueued: Redis is unreachable"):
        await producer.enqueue("fleet.noop")
    await producer.close()


async def test_a_job_written_with_plain_redis_commands_runs(settings, redis):
    """What the TypeScript backend does, per the README's wire format section."""
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    document = json.dumps({"t": None, "f": "fleet.sleep", "a": [], "k": {"ms": 1}, "et": now_ms})
    assert await redis.set("arq:job:from-ts-1", document, nx=True, px=86_400_000)
    await redis.zadd("jobfleet:queue:default", {"from-ts-1": now_ms})

    await Fleet(settings, [keys.QUEUE_DEFAULT], burst=True, scheduler=False).run()

    result = json.loads(await redis.get("arq:result:from-ts-1"))
    assert result["s"] is True and result["r"] == {"slept_ms": 1}

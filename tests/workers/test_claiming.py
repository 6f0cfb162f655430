"""The claim script against the real Redis: one call reads the due jobs and takes a batch of them."""

from jobfleet import keys
from workers.claiming import Claimer

QUEUE = "jobfleet:queue:claim-test"


async def test_takes_due_jobs_oldest_first_up_to_the_limit_and_skips_held_and_future_ones(redis):
    await redis.zadd(QUEUE, {"a": 100, "b": 200, "held": 150, "c": 300, "later": 10_000})
    await redis.set(keys.in_progress_key_prefix + "held", "1")
    claimer = Claimer(redis, QUEUE, in_progress_ms=60_000)

    seen, claimed = await claimer.claim_due(limit=2, read_limit=500, now_ms=5_000)

    assert seen == 4  # due, whoever holds them: a busy queue is not an idle one
    assert claimed == [("a", 100), ("b", 200)]
    assert await redis.pttl(keys.in_progress_key_prefix + "a") > 50_000

    # the next call passes over what is now held, and never takes a job not yet due
    seen, claimed = await claimer.claim_due(limit=10, read_limit=500, now_ms=5_000)
    assert claimed == [("c", 300)]


async def test_two_workers_never_take_the_same_job(redis):
    await redis.zadd(QUEUE, {f"j{i}": i for i in range(50)})
    first, second = Claimer(redis, QUEUE, 60_000), Claimer(redis, QUEUE, 60_000)

    _, a = await first.claim_due(limit=30, read_limit=500, now_ms=1_000)
    _, b = await second.claim_due(limit=30, read_limit=500, now_ms=1_000)

    assert len(a) == 30 and len(b) == 20
    assert not {i for i, _ in a} & {i for i, _ in b}


async def test_an_empty_queue_is_seen_as_empty(redis):
    assert await Claimer(redis, QUEUE, 60_000).claim_due(limit=10, read_limit=500, now_ms=1_000) == (0, [])

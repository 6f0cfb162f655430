"""Counters flushed to Redis: every process adds to the same totals, histograms are cumulative."""

from redis.asyncio import Redis

from jobfleet import keys
from workers.stats import DURATION_BUCKETS_S, Stats


async def test_two_processes_add_up_and_the_histogram_is_cumulative(redis: Redis):
    for durations in ((0.003, 0.02), (1000.0,)):  # two worker processes
        stats = Stats()
        for i, duration in enumerate(durations):
            stats.ended(f"j{i}", "fleet.sleep", "succeeded", duration, {"slept_ms": 5})
        await stats.flush(redis)

    totals = {
        k.decode(): float(v) for k, v in (await redis.hgetall(keys.STATS_PREFIX + "fleet.sleep")).items()
    }
    assert totals["succeeded"] == 3 and totals["duration_count"] == 3
    assert totals["le:0.005"] == 1 and totals["le:0.01"] == 1 and totals["le:0.025"] == 2
    assert totals[f"le:{DURATION_BUCKETS_S[-1]}"] == 2, "1000 s is past the last bucket: only in the count"
    assert totals["rows:slept_ms"] == 15
    assert abs(totals["duration_sum"] - 1000.023) < 1e-6

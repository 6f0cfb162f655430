"""A page view costs a bounded number of Redis commands, however many jobs Redis holds: 100,000
finished jobs in the history and 20,000 waiting in a queue cost what a handful does."""

import pytest

from jobfleet import keys, wire
from jobfleet.catalog import CATALOG
from tests.ops.support import CountingConnection, dashboard
from workers import history
from workers.failures import FailureRecord

FINISHED, QUEUED, DEFERRED = 100_000, 20_000, 5_000
NAMES = ("fleet.noop", "fleet.sleep", "sessions.auto_complete", "calendar.sync_session")

# The pages and the most commands each may cost. The overview reads 84 throughput buckets (one
# round trip); every other page a dozen or so.
PAGES = {
    "/": 110,
    "/jobs": 12,
    "/jobs?status=failed": 12,
    "/jobs?job=fleet.sleep&status=succeeded&page=700": 12,
    "/jobs?since=2026-01-01T00:00&until=2026-11-01T00:00&page=3": 12,
    "/jobs?status=queued&queue=default&page=300": 12,
    "/jobs?status=deferred&queue=default": 12,
    # queues keep no index by name: the filter reads a bounded window (2,000 jobs in 500s)
    "/jobs?status=queued&queue=default&job=fleet.noop": 20,
    "/jobs/job-19999": 16,
    # an id whose result expired: one ZSCORE per job name and status, in one round trip (so the
    # bound grows with the catalog, not with the jobs Redis holds)
    "/jobs/finished-123": len(CATALOG) * len(history.STATUSES) + 15,
    "/failed?page=3": 8,
    "/running": 8,
    "/workers": 8,
    "/schedules": 8,
    "/metrics": 40,
}


async def fill(redis, finished: int, queued: int, deferred: int) -> None:
    now = wire.now_ms()
    chunk = 10_000
    for start in range(0, finished, chunk):
        per_key: dict[str, dict[str, int]] = {}
        for i in range(start, min(start + chunk, finished)):
            name, status = NAMES[i % len(NAMES)], history.STATUSES[i % 3]
            member = history.member(status, name, f"finished-{i}")
            at = now - (finished - i) * 1000
            for key in (history.index_key(), history.index_key(name), history.index_key(status=status)):
                per_key.setdefault(key, {})[member] = at
            per_key.setdefault(history.index_key(name, status), {})[member] = at
        async with redis.pipeline(transaction=False) as pipe:
            for key, members in per_key.items():
                pipe.zadd(key, members)
            await pipe.execute()
    for start in range(0, queued + deferred, chunk):
        ids = range(start, min(start + chunk, queued + deferred))
        async with redis.pipeline(transaction=False) as pipe:
            pipe.mset(
                {
                    keys.job_key_prefix + f"job-{i}": wire.job_document("fleet.sleep", {"ms": 1}, now)
                    for i in ids
                }
            )
            pipe.zadd(
                keys.QUEUE_DEFAULT,
                {f"job-{i}": now - 60_000 + i if i < queued else now + 3_600_000 + i for i in ids},
            )
            await pipe.execute()
    record = FailureRecord(redis)
    for i in range(200):
        await record.record(
            job_id=f"failed-{i}", job="fleet.noop", queue=keys.QUEUE_DEFAULT, payload={}, tries=1, error="x"
        )


@pytest.fixture
async def crowded(redis):
    await fill(redis, FINISHED, QUEUED, DEFERRED)
    return redis


async def costs(settings) -> dict[str, tuple[int, int]]:
    """(commands, status code) of each page view."""
    result = {}
    async with dashboard(settings, counting=True) as client:
        await client.get("/workers")  # connect first: the handshake is not the page's cost
        for path in PAGES:
            CountingConnection.commands.clear()
            response = await client.get(path)
            result[path] = (sum(CountingConnection.commands.values()), response.status_code)
            assert not {"KEYS", "SCAN", "ZSCAN", "HSCAN", "SSCAN"} & set(CountingConnection.commands), path
    return result


async def test_page_views_cost_a_bounded_number_of_commands(settings, crowded, pg, mysql):
    assert await crowded.zcard(keys.HISTORY_INDEX) == FINISHED
    assert await crowded.zcard(keys.QUEUE_DEFAULT) == QUEUED + DEFERRED

    for path, (commands, status) in (await costs(settings)).items():
        assert status == 200, path
        assert commands <= PAGES[path], f"{path} cost {commands} commands"


async def test_the_cost_does_not_grow_with_the_jobs(settings, redis, pg, mysql):
    await fill(redis, 300, 120, 60)
    small = await costs(settings)
    await redis.flushdb()
    await fill(redis, FINISHED, QUEUED, DEFERRED)
    large = await costs(settings)
    # with few jobs a deep page is empty and skips its MGET: one command is all the difference
    grows = {
        path: (small[path][0], large[path][0])
        for path in PAGES
        if large[path][0] > small[path][0] + 1 and "job=fleet.noop" not in path
    }
    assert not grows, f"(few jobs, many jobs) commands: {grows}"


async def test_pages_of_a_crowded_redis_are_right(settings, crowded):
    async with dashboard(settings) as client:
        everything = (await client.get("/jobs")).text
        assert f"{FINISHED} in all" in everything and "finished-99999" in everything
        succeeded = (await client.get("/jobs?job=fleet.sleep&status=succeeded&page=2")).text
        # fleet.sleep is every 4th job, succeeded every 3rd: i = 1 mod 4 and 0 mod 3, so i = 9 mod 12
        expected = [i for i in range(FINISHED - 1, -1, -1) if i % 12 == 9][50:100]
        assert f"{len(range(9, FINISHED, 12))} in all" in succeeded
        assert all(f"finished-{i}<" in succeeded for i in expected)
        queued = (await client.get("/jobs?status=queued&queue=default&page=400")).text
        assert f"{QUEUED} in all" in queued and "job-19950<" in queued and "job-19999<" in queued
        deferred = (await client.get("/jobs?status=deferred&queue=default")).text
        assert f"{DEFERRED} in all" in deferred and f"job-{QUEUED}<" in deferred
        overview = (await client.get("/")).text
        assert f">{QUEUED}<" in overview and f">{DEFERRED}<" in overview

"""Every page and action of the dashboard against real Redis, PostgreSQL and MariaDB, with real
arq workers running the jobs."""

import re
from datetime import UTC, datetime, timedelta
from html import unescape

from jobfleet import keys, wire
from jobfleet.producer import Producer
from tests.factories import PinTeach, ago
from tests.ops.support import csrf_of, dashboard, eventually, live_worker, post, run_burst
from workers import history
from workers.failures import FailureRecord


async def post_anyway(client, url: str):
    """POST an action no page offers now (a stale tab), with a valid CSRF token."""
    return await client.post(url, data={"csrf": csrf_of((await client.get("/workers")).text)})


def cells(html: str) -> str:
    """The page's text with tags dropped and whitespace squeezed, for readable assertions."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


async def write_raw_job(redis, job_id: str, name: str, payload: dict) -> None:
    # as a non-Python producer would, bypassing the producer's validation
    await redis.set(keys.job_key_prefix + job_id, wire.job_document(name, payload, wire.now_ms()))
    await redis.zadd(keys.QUEUE_DEFAULT, {job_id: wire.now_ms()})


async def test_overview_shows_queues_failures_and_throughput(settings, deps, redis, pg, mysql):
    producer = Producer(redis)
    for ms in (1, 2, 3):
        await producer.enqueue("fleet.sleep", {"ms": ms})
    await write_raw_job(redis, "bad-1", "fleet.sleep", {"ms": "lots"})
    await run_burst(settings, deps, redis)
    for _ in range(3):
        await producer.enqueue("fleet.noop")
    for _ in range(2):
        await producer.enqueue("fleet.noop", defer_by=3600)

    async with dashboard(settings) as client:
        page = await client.get("/")
    assert page.status_code == 200
    text = cells(page.text)
    assert "3 queued" in text and "2 deferred" in text and "1 failed" in text
    assert re.search(r"default 3 2 0 \d+ (ms|s)", text), text
    assert "Last hour, per minute: 3 succeeded, 1 failed (25.0 %)" in text
    assert page.text.count('class="failed"') >= 1 and "<svg" in page.text
    assert "fleet.sleep 3 1 0" in text  # by job, last hour


async def test_jobs_are_found_by_name_status_time_and_id(settings, deps, redis):
    producer = Producer(redis)
    ok = [await producer.enqueue("fleet.sleep", {"ms": 1}) for _ in range(3)]
    noop = await producer.enqueue("fleet.noop", key="probe-1")
    await write_raw_job(redis, "bad-1", "fleet.sleep", {"ms": "lots"})
    await run_burst(settings, deps, redis)
    waiting = await producer.enqueue("fleet.sleep", {"ms": 1})
    later = await producer.enqueue("fleet.noop", defer_by=3600)

    async with dashboard(settings) as client:
        everything = cells((await client.get("/jobs")).text)
        assert "5 in all" in everything and all(i in everything for i in [*ok, noop, "bad-1"])

        sleeps = cells((await client.get("/jobs", params={"job": "fleet.sleep", "status": "succeeded"})).text)
        assert "3 in all" in sleeps and noop not in sleeps and "bad-1" not in sleeps

        failed = cells((await client.get("/jobs", params={"status": "failed"})).text)
        assert "1 in all" in failed and "bad-1" in failed and "invalid payload" in failed

        tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
        assert "No jobs match" in (await client.get("/jobs", params={"since": tomorrow})).text
        assert "5 in all" in cells((await client.get("/jobs", params={"until": tomorrow})).text)
        bad_time = await client.get("/jobs", params={"since": "yesterday"})
        assert bad_time.status_code == 400 and "is not a time" in bad_time.text

        queued = cells((await client.get("/jobs", params={"status": "queued", "queue": "default"})).text)
        assert waiting in queued and later not in queued
        deferred = cells((await client.get("/jobs", params={"status": "deferred", "queue": "default"})).text)
        assert later in deferred and waiting not in deferred
        by_name = cells(
            (
                await client.get(
                    "/jobs", params={"status": "queued", "job": "fleet.noop", "queue": "default"}
                )
            ).text
        )
        assert "No jobs match" in by_name

        found = await client.get("/jobs", params={"id": noop})
        assert found.status_code == 303 and found.headers["location"] == "/jobs/fleet.noop%3Aprobe-1"
        assert (await client.get("/jobs", params={"status": "lost"})).status_code == 400


async def test_a_job_page_shows_payload_tries_times_result(settings, deps, redis):
    job_id = await Producer(redis).enqueue("fleet.sleep", {"ms": 7})
    await run_burst(settings, deps, redis)
    async with dashboard(settings) as client:
        page = await client.get(f"/jobs/{job_id}")
    text = cells(page.text)
    assert "succeeded" in text and "fleet.sleep" in text and "default" in text
    assert '"ms": 7' in text and '"slept_ms": 7' in text
    assert re.search(
        r"Tries 1 Enqueued \d{4}-\d\d-\d\d .* Started \d{4}.* Finished \d{4}.* Duration \d+", text
    )


async def test_a_job_page_names_the_trace_its_producer_started(settings, deps, redis):
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    context = {"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
    document = {"t": None, "f": "fleet.noop", "a": [], "k": {}, "et": wire.now_ms(), "tc": context}
    await redis.set(keys.job_key_prefix + "traced-1", wire.encode(document))
    await redis.zadd(keys.QUEUE_DEFAULT, {"traced-1": wire.now_ms() + 60_000})
    async with dashboard(settings) as client:
        waiting = cells((await client.get("/jobs/traced-1")).text)
    await redis.zadd(keys.QUEUE_DEFAULT, {"traced-1": wire.now_ms()})
    await run_burst(settings, deps, redis)
    async with dashboard(settings) as client:
        done = cells((await client.get("/jobs/traced-1")).text)
    assert f"Trace {trace_id}" in waiting
    assert "succeeded" in done and f"Trace {trace_id}" in done, "the result keeps the trace"


async def test_secret_fields_of_payloads_are_masked(settings, deps, redis):
    await write_raw_job(
        redis, "leaky-1", "fleet.sleep", {"ms": 1, "api_token": "s3cr3t", "nested": {"password": "p4ss"}}
    )
    await redis.set(keys.job_key_prefix + "raw-1", b'\x80{"client_secret": "hunter2", "id": 4')
    await redis.zadd(keys.QUEUE_DEFAULT, {"raw-1": wire.now_ms()})
    await run_burst(settings, deps, redis)
    async with dashboard(settings) as client:
        leaky = await client.get("/jobs/leaky-1")
        raw = await client.get("/jobs/raw-1")
    leaky_text, raw_text = cells(leaky.text), cells(raw.text)
    assert '"ms": 1' in leaky_text and "Traceback" in leaky_text
    assert "s3cr3t" not in leaky_text and "p4ss" not in leaky_text
    assert '"api_token": "••••••"' in leaky_text and '"password": "••••••"' in leaky_text
    assert "hunter2" not in raw_text and "client_secret" in raw_text and '"id": 4' in raw_text


async def test_unknown_job_is_a_404(settings, redis):
    async with dashboard(settings) as client:
        response = await client.get("/jobs/nope")
    assert response.status_code == 404 and "no job 'nope'" in cells(response.text)


async def test_retry_a_failed_job_and_see_it_run(settings, deps, redis):
    record = FailureRecord(redis)
    await record.record(
        job_id="fleet.sleep:k1",
        job="fleet.sleep",
        queue=keys.QUEUE_DEFAULT,
        payload={"ms": 1},
        tries=5,
        error="boom",
    )
    async with dashboard(settings) as client:
        listing = cells((await client.get("/failed")).text)
        assert "fleet.sleep:k1" in listing and "boom" in listing and "1 in all" in listing

        response = await post(client, "/failed/fleet.sleep:k1/retry", page="/failed")
        assert response.status_code == 303 and response.headers["location"] == "/jobs/fleet.sleep%3Ak1"
        assert await record.count() == 0
        queued = cells((await client.get("/jobs/fleet.sleep:k1")).text)
        assert "queued" in queued and "retried fleet.sleep:k1: enqueued as fleet.sleep:k1" in queued

        await run_burst(settings, deps, redis)
        page = cells((await client.get("/jobs/fleet.sleep:k1")).text)
        assert "succeeded" in page and "slept_ms" in page


async def test_delete_one_retry_all_and_delete_all(settings, deps, redis):
    record = FailureRecord(redis)
    for i in range(3):
        await record.record(
            job_id=f"f{i}", job="fleet.noop", queue=keys.QUEUE_DEFAULT, payload={}, tries=1, error="x"
        )
    async with dashboard(settings) as client:
        assert (await post(client, "/failed/f0/delete", page="/failed")).status_code == 303
        assert await record.get("f0") is None and await record.count() == 2
        assert (await post_anyway(client, "/failed/f0/delete")).status_code == 404

        done = await post(client, "/failed/retry-all", page="/failed")
        assert done.status_code == 303 and await record.count() == 0
        assert await redis.zcard(keys.QUEUE_DEFAULT) == 2
        assert "retried 2 job(s)" in (await client.get("/failed")).text

        for i in range(2):
            await record.record(
                job_id=f"g{i}", job="fleet.noop", queue=keys.QUEUE_DEFAULT, payload={}, tries=1, error="y"
            )
        assert (await post(client, "/failed/delete-all", page="/failed")).status_code == 303
        assert await record.count() == 0


async def test_abort_a_running_job(settings, deps, redis):
    async with dashboard(settings) as client, live_worker(settings, deps, redis) as heartbeat:
        job_id = await Producer(redis).enqueue("fleet.sleep", {"ms": 30_000})

        async def listed():
            page = await client.get("/running")
            return job_id in page.text and page

        page = await eventually(listed)
        assert heartbeat.worker_id in page.text and "fleet.sleep" in page.text
        assert "in progress" in cells((await client.get(f"/jobs/{job_id}")).text)

        response = await post(client, f"/jobs/{job_id}/abort", page="/running")
        assert response.status_code == 303

        async def aborted():
            entry = await history.find(redis, job_id, ["fleet.sleep"])
            return entry and entry.status == "aborted"

        await eventually(aborted)
        assert "aborted" in cells((await client.get(f"/jobs/{job_id}")).text)
        assert await FailureRecord(redis).count() == 0, "an abort is not a failure"
        not_running = await post_anyway(client, f"/jobs/{job_id}/abort")
        assert not_running.status_code == 303 and await redis.zscore(keys.ABORT_JOBS, job_id) is None


async def test_cancel_a_deferred_job(settings, redis):
    job_id = await Producer(redis).enqueue("fleet.noop", defer_by=3600)
    async with dashboard(settings) as client:
        assert "deferred" in cells((await client.get(f"/jobs/{job_id}")).text)
        assert (await post(client, f"/jobs/{job_id}/cancel", page=f"/jobs/{job_id}")).status_code == 303
    assert await redis.zcard(keys.QUEUE_DEFAULT) == 0


async def test_schedules_show_the_last_run_and_run_now_enqueues_a_sweep(settings, deps, redis, pg):
    seed = PinTeach(pg)
    await seed.individual(ends_at=ago(minutes=30))
    async with dashboard(settings) as client:
        before = cells((await client.get("/schedules")).text)
        assert "sessions.auto_complete * * * * * never ran" in before

        response = await post(client, "/schedules/sessions.auto_complete/run", page="/schedules")
        assert response.status_code == 303
        job_id = response.headers["location"].removeprefix("/jobs/")
        assert re.fullmatch(r"[0-9a-f]{32}", job_id), "a fresh id, not the scheduler's tick id"
        assert await redis.zscore(keys.QUEUE_SWEEPS, job_id) is not None

        await run_burst(settings, deps, redis, keys.QUEUE_SWEEPS)
        after = cells((await client.get("/schedules")).text)
        assert re.search(
            rf"sessions\.auto_complete \* \* \* \* \* \d{{4}}-\d\d-\d\d [\d:]+ {job_id} succeeded "
            r"[\d.]+ (ms|s) completed 1 pending_review 0 credits_consumed 1",
            after,
        ), after
        assert (await post_anyway(client, "/schedules/no.such/run")).status_code == 404


async def test_workers_page_shows_heartbeat_queues_concurrency_and_counts(settings, deps, redis):
    async with dashboard(settings) as client, live_worker(settings, deps, redis) as heartbeat:
        await Producer(redis).enqueue("fleet.noop")

        async def counted():
            text = cells((await client.get("/workers")).text)
            return "alive" in text and re.search(r"default 10 0 1 0 0 0\.1\.0", text) and text

        text = await eventually(counted)
        assert heartbeat.worker_id in text

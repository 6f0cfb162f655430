"""/metrics from Redis aggregates and the databases, and the domain-health page."""

import re
import uuid
from datetime import UTC, datetime, timedelta
from html import unescape

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from db import pickatale as pk
from db import pinteach as t
from jobfleet import keys, wire
from jobfleet.producer import Producer
from tests.factories import PinTeach, ago, ahead
from tests.ops.support import dashboard, run_burst
from workers.stats import Stats


async def scrape(client) -> dict[tuple[str, tuple], float]:
    response = await client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


async def test_job_counters_are_the_sum_of_every_worker_process(settings, deps, redis, pg, mysql):
    producer = Producer(redis)
    for ms in (1, 2, 3):
        await producer.enqueue("fleet.sleep", {"ms": ms})
    await redis.set(keys.job_key_prefix + "bad", wire.job_document("fleet.sleep", {"ms": -1}, wire.now_ms()))
    await redis.zadd(keys.QUEUE_DEFAULT, {"bad": wire.now_ms()})
    await run_burst(settings, deps, redis)
    # a second worker process, elsewhere, adds its own counts to the same hashes
    other = Stats()
    other.ended("x1", "fleet.sleep", "succeeded", 0.2)
    other.ended("x2", "fleet.sleep", "retried", 40)
    await other.flush(redis)
    for i in range(4):
        await producer.enqueue("fleet.noop", defer_by=-120 + i)  # due two minutes ago
    await producer.enqueue("fleet.noop", defer_by=600)
    await redis.hset(keys.SCHEDULE_LAST_SUCCESS, "sessions.auto_complete", 1_700_000_000.5)

    async with dashboard(settings) as client:
        m = await scrape(client)
    sleep = (("job", "fleet.sleep"),)
    assert m[("jobfleet_jobs_started_total", sleep)] == 4
    assert m[("jobfleet_jobs_finished_total", sleep)] == 5  # 3 + 1 here, 1 in the other process
    assert m[("jobfleet_jobs_failed_total", sleep)] == 1
    assert m[("jobfleet_jobs_retried_total", sleep)] == 1
    assert m[("jobfleet_job_duration_seconds_count", sleep)] == 6
    assert m[("jobfleet_job_duration_seconds_bucket", (("job", "fleet.sleep"), ("le", "0.25")))] == 5
    assert m[("jobfleet_job_duration_seconds_bucket", (("job", "fleet.sleep"), ("le", "+Inf")))] == 6
    assert 40.2 < m[("jobfleet_job_duration_seconds_sum", sleep)] < 41
    assert m[("jobfleet_sweep_rows_total", (("count", "slept_ms"), ("job", "fleet.sleep")))] == 6

    default = (("queue", "default"),)
    assert m[("jobfleet_queue_depth", default)] == 4
    assert m[("jobfleet_queue_deferred", default)] == 1
    assert m[("jobfleet_queue_in_progress", default)] == 0
    assert 119 <= m[("jobfleet_queue_oldest_job_age_seconds", default)] < 200
    assert m[("jobfleet_queue_oldest_job_age_seconds", (("queue", "sweeps"),))] == 0
    assert m[("jobfleet_failed_jobs_recorded", ())] == 1

    auto = (("job", "sessions.auto_complete"),)
    assert m[("jobfleet_schedule_last_success_timestamp_seconds", auto)] == 1_700_000_000.5
    assert m[("jobfleet_schedule_period_seconds", auto)] == 60
    assert m[("jobfleet_schedule_period_seconds", (("job", "telemetry.purge"),))] == 86400


async def seed_domain(pg, mysql) -> None:
    seed = PinTeach(pg)
    await seed.individual(ends_at=ago(hours=2))  # due for auto-completion 1 h 45 min ago
    await seed.individual(ends_at=ago(hours=5), status="completed")
    expired = await seed.individual(ends_at=ahead(days=1), enrollment={"valid_until": ago(days=1)})
    await seed.individual(ends_at=ahead(days=1), enrollment={"valid_until": ago(days=1), "sessions_total": 1})
    ids = await seed.individual(ends_at=ahead(days=2))
    teacher, student, service = ids["teacher_id"], ids["student_id"], ids["service_id"]
    for status, expires in (
        ("notified", ago(hours=3)),
        ("notified", ahead(hours=3)),
        ("expired", ago(days=3)),
    ):
        await seed.insert(
            t.waitlist_entries,
            teacher_id=teacher,
            service_id=service,
            student_id=await seed.student(teacher),
            position=1,
            status=status,
            notified_at=expires - timedelta(hours=48),
            offer_expires_at=expires,
        )
    await seed.insert(t.session_calendar_sync, session_id=ids["session_id"], sync_status="failed", attempts=8)
    await seed.insert(
        t.session_calendar_sync, session_id=expired["session_id"], sync_status="synced", attempts=1
    )
    await seed.insert(
        t.oauth_connections,
        teacher_id=teacher,
        provider="google",
        provider_account_id="g-1",
        revoked_at=ago(hours=1),
    )
    for status, due in (
        ("pending", ahead(days=2)),
        ("processing", ahead(days=1)),
        ("pending", ago(days=1)),
        ("pending", ahead(days=20)),
        ("completed", ago(days=10)),
    ):
        await seed.insert(
            t.data_erasure_requests,
            teacher_id=teacher,
            student_id=student,
            requested_by="student",
            status=status,
            due_at=due,
        )
    async with mysql.begin() as conn:
        now = datetime.now(UTC).replace(tzinfo=None)
        await conn.execute(
            pk.events.insert(),
            [
                {
                    "event_id": str(uuid.uuid4()),
                    "learner_id": "l1",
                    "session_id": "s1",
                    "event_type": "page_turned",
                    "client_ts": 0,
                    "created_at": now - age,
                }
                for age in (timedelta(days=100), timedelta(minutes=5))
            ],
        )


async def test_domain_health_page_and_metrics(settings, redis, pg, mysql):
    await seed_domain(pg, mysql)
    await redis.hset(keys.OUTBOX_STATS, "enqueued", 3)  # what the relays counted so far
    async with pg.begin() as conn:  # two rows no relay took (no worker runs here), one 5 minutes old
        await conn.execute(
            text(
                "INSERT INTO job_outbox (job, payload, created_at) VALUES "
                "('fleet.noop', '{}', now() - interval '5 minutes'), ('fleet.noop', '{}', now())"
            )
        )
    async with dashboard(settings) as client:
        page = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", (await client.get("/health")).text))
        m = await scrape(client)
        overview = (await client.get("/")).text

    assert "Sessions due for auto-completion, not completed 1 sessions.auto_complete" in page
    assert "the oldest has been due for 105 min" in unescape(page)
    assert "Enrollments past valid_until still active with credits 1 credits.expire" in page
    assert "Waitlist offers past their window 1 " in page
    assert (
        "Calendar syncs failed 1 " in page and "Calendar reconnects required (revoked connections) 1" in page
    )
    assert (
        "GDPR erasure requests due within 3 days 2 " in page and "GDPR erasure requests past due 1 " in page
    )
    assert "Oldest telemetry event (policy: 90 days) 100.0 d" in page
    assert "Outbox rows waiting for the relay 2 " in page and "the oldest has waited 5 min" in unescape(page)

    def gauge(name):
        return m[(name, ())]

    assert gauge("jobfleet_domain_health_up") == 1
    assert gauge("jobfleet_domain_sessions_overdue") == 1
    assert 6290 < gauge("jobfleet_domain_oldest_overdue_session_age_seconds") < 6400
    assert gauge("jobfleet_domain_enrollments_expired_with_credits") == 1
    assert gauge("jobfleet_domain_waitlist_offers_past_window") == 1
    assert 10790 < gauge("jobfleet_domain_oldest_waitlist_offer_past_window_age_seconds") < 10900
    assert gauge("jobfleet_domain_calendar_syncs_failed") == 1
    assert gauge("jobfleet_domain_calendar_reconnects_required") == 1
    assert gauge("jobfleet_domain_gdpr_requests_due_soon") == 2
    assert gauge("jobfleet_domain_gdpr_requests_overdue") == 1
    assert 86390 < gauge("jobfleet_domain_oldest_gdpr_request_overdue_seconds") < 86500
    assert 100 * 86400 - 10 < gauge("jobfleet_domain_oldest_telemetry_event_age_seconds") < 100 * 86400 + 120
    assert gauge("jobfleet_domain_telemetry_policy_seconds") == 90 * 86400
    assert gauge("jobfleet_domain_outbox_rows") == 2
    assert m[("jobfleet_outbox_rows_total", (("outcome", "enqueued"),))] == 3
    assert m[("jobfleet_outbox_rows_total", (("outcome", "failed"),))] == 0
    assert 295 < gauge("jobfleet_domain_oldest_outbox_row_age_seconds") < 400
    assert "1 GDPR request(s) past due" in overview and "Telemetry older than the 90-day policy" in overview


async def test_a_database_that_is_away_is_reported_not_fatal(settings, redis, mysql):
    broken = settings.model_copy(update={"pinteach_dsn": "postgresql://postgres@127.0.0.1:1/nowhere"})
    async with dashboard(broken) as client:
        page = (await client.get("/health")).text
        m = await scrape(client)
        assert (await client.get("/")).status_code == 200
    assert "PinTeach: " in page
    assert m[("jobfleet_domain_health_up", ())] == 0
    assert ("jobfleet_domain_sessions_overdue", ()) not in m
    assert m[("jobfleet_domain_oldest_telemetry_event_age_seconds", ())] == 0


async def test_the_telemetry_policy_is_the_one_in_the_retention_file(settings, redis, pg, mysql, tmp_path):
    shipped = settings.retention_file.read_text()
    assert "max_age_days = 90" in shipped
    retention = tmp_path / "retention.toml"
    retention.write_text(shipped.replace("max_age_days = 90", "max_age_days = 120", 1))
    await seed_domain(pg, mysql)  # its oldest telemetry event is 100 days old
    async with dashboard(settings.model_copy(update={"retention_file": retention})) as client:
        page = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", (await client.get("/health")).text))
        m = await scrape(client)
        overview = (await client.get("/")).text
    assert m[("jobfleet_domain_telemetry_policy_seconds", ())] == 120 * 86400
    assert "Oldest telemetry event (policy: 120 days) 100.0 d" in page
    assert "Telemetry older than" not in overview

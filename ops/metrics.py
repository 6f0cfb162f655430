"""/metrics in the Prometheus text format.

Worker processes add their counts to Redis hashes (workers/stats.py); this reads those sums, so the
numbers are the fleet's whatever the number of processes, and survive a worker's restart. The read
is async; the collector then only turns the snapshot into metric families.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from redis.asyncio import Redis

from jobfleet import keys
from ops import queries
from ops.health_queries import DomainHealth, DomainHealthCache
from workers.scheduler import Schedule

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# DomainHealth field -> (metric name, help)
DOMAIN_METRICS = {
    "sessions_overdue": (
        "jobfleet_domain_sessions_overdue",
        "Sessions due for auto-completion (ended more than the grace ago) and not completed",
    ),
    "oldest_overdue_session_age_s": (
        "jobfleet_domain_oldest_overdue_session_age_seconds",
        "Time since the oldest session still not auto-completed became due",
    ),
    "enrollments_expired_with_credits": (
        "jobfleet_domain_enrollments_expired_with_credits",
        "Enrollments past valid_until still active with credits left",
    ),
    "waitlist_offers_past_window": (
        "jobfleet_domain_waitlist_offers_past_window",
        "Waitlist offers past their window and not expired",
    ),
    "oldest_offer_past_window_age_s": (
        "jobfleet_domain_oldest_waitlist_offer_past_window_age_seconds",
        "Time since the oldest waitlist offer still open passed its window",
    ),
    "calendar_syncs_failed": ("jobfleet_domain_calendar_syncs_failed", "Session calendar syncs that failed"),
    "calendar_reconnects_required": (
        "jobfleet_domain_calendar_reconnects_required",
        "OAuth connections the provider revoked: the teacher must reconnect",
    ),
    "gdpr_due_within_3_days": (
        "jobfleet_domain_gdpr_requests_due_soon",
        "Open GDPR erasure requests due within 3 days",
    ),
    "gdpr_overdue": ("jobfleet_domain_gdpr_requests_overdue", "Open GDPR erasure requests past due_at"),
    "oldest_gdpr_overdue_age_s": (
        "jobfleet_domain_oldest_gdpr_request_overdue_seconds",
        "How long the most overdue open GDPR erasure request is past due_at",
    ),
    "learner_erasures_due_within_3_days": (
        "jobfleet_domain_learner_erasures_due_soon",
        "Open Pickatale learner erasure requests due within 3 days",
    ),
    "learner_erasures_overdue": (
        "jobfleet_domain_learner_erasures_overdue",
        "Open Pickatale learner erasure requests past due_at",
    ),
    "oldest_learner_erasure_overdue_age_s": (
        "jobfleet_domain_oldest_learner_erasure_overdue_seconds",
        "How long the most overdue open learner erasure request is past due_at",
    ),
    "review_requests_past_expiry": (
        "jobfleet_domain_review_requests_past_expiry",
        "Review requests still pending past expires_at (reviews.expire)",
    ),
    "oldest_review_request_past_expiry_age_s": (
        "jobfleet_domain_oldest_review_request_past_expiry_seconds",
        "How long the oldest review request still pending is past expires_at",
    ),
    "deleted_students_due_for_erasure": (
        "jobfleet_domain_deleted_students_due_for_erasure",
        "Soft-deleted students past their teacher's retention setting without an erasure request",
    ),
    "oldest_telemetry_age_s": (
        "jobfleet_domain_oldest_telemetry_event_age_seconds",
        "Age of the oldest telemetry event (policy: jobfleet_domain_telemetry_policy_seconds)",
    ),
    "outbox_rows": ("jobfleet_domain_outbox_rows", "Rows waiting in PinTeach's job_outbox for the relay"),
    "oldest_outbox_row_age_s": (
        "jobfleet_domain_oldest_outbox_row_age_seconds",
        "Age of the oldest row waiting in job_outbox (0 when it is empty)",
    ),
    "telemetry_policy_s": (
        "jobfleet_domain_telemetry_policy_seconds",
        "How long telemetry events may be kept",
    ),
}


OUTBOX_OUTCOMES = ("enqueued", "duplicate", "relayed_before", "failed")


@dataclass(frozen=True, slots=True)
class Snapshot:
    counters: list[queries.JobCounters]
    queues: list[queries.QueueState]
    workers: list[queries.WorkerState]
    schedules: list[queries.ScheduleState]
    failed_recorded: int
    health: DomainHealth | None
    recoveries: queries.Recoveries
    outbox: dict[str, int] = field(default_factory=dict)  # the relays' counters, summed in Redis


async def snapshot(redis: Redis, schedules: list[Schedule], health: DomainHealthCache | None) -> Snapshot:
    states = await queries.workers(redis)
    return Snapshot(
        counters=await queries.counters(redis),
        queues=await queries.queues(redis, states),
        workers=states,
        schedules=await queries.schedules(redis, schedules),
        failed_recorded=await redis.zcard(keys.FAILED_INDEX),
        health=await health.get() if health else None,
        recoveries=await queries.recoveries(redis, states, limit=1),
        outbox={k.decode(): int(v) for k, v in (await redis.hgetall(keys.OUTBOX_STATS)).items()},
    )


class SnapshotCollector(Collector):
    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap

    def collect(self) -> Iterator:
        yield from self._jobs()
        yield from self._queues()
        yield from self._fleet()
        yield from self._schedules()
        yield from self._domain()

    def _jobs(self) -> Iterator:
        per_outcome = {
            "started": ("jobfleet_jobs_started", "Jobs started, every try counted"),
            "finished": ("jobfleet_jobs_finished", "Jobs finished for good: succeeded or failed"),
            "failed": ("jobfleet_jobs_failed", "Jobs that failed for good (in the failure record)"),
            "retried": ("jobfleet_jobs_retried", "Tries that ended in a retry (or were interrupted)"),
        }
        families = {k: CounterMetricFamily(n, h, labels=["job"]) for k, (n, h) in per_outcome.items()}
        duration = HistogramMetricFamily(
            "jobfleet_job_duration_seconds", "Duration of each try, by job", labels=["job"]
        )
        rows = CounterMetricFamily(
            "jobfleet_sweep_rows",
            "Rows a sweep handled, by the count its summary names",
            labels=["job", "count"],
        )
        for c in self.snap.counters:
            families["started"].add_metric([c.job], c.get("started"))
            families["finished"].add_metric([c.job], c.get("succeeded") + c.get("failed"))
            families["failed"].add_metric([c.job], c.get("failed"))
            families["retried"].add_metric([c.job], c.get("retried"))
            duration.add_metric([c.job], c.buckets, c.get("duration_sum"))
            for name, n in sorted(c.rows.items()):
                rows.add_metric([c.job, name], n)
        yield from families.values()
        yield duration
        yield rows

    def _queues(self) -> Iterator:
        gauges = {
            "queued": GaugeMetricFamily(
                "jobfleet_queue_depth", "Jobs due and waiting for a worker", labels=["queue"]
            ),
            "deferred": GaugeMetricFamily(
                "jobfleet_queue_deferred",
                "Jobs scheduled for later (deferred, in retry backoff)",
                labels=["queue"],
            ),
            "in_progress": GaugeMetricFamily(
                "jobfleet_queue_in_progress", "Jobs running now", labels=["queue"]
            ),
            "oldest_age_s": GaugeMetricFamily(
                "jobfleet_queue_oldest_job_age_seconds",
                "How long the oldest due job has waited (0 when none waits)",
                labels=["queue"],
            ),
        }
        for q in self.snap.queues:
            for attr, gauge in gauges.items():
                gauge.add_metric([q.name], getattr(q, attr))
        yield from gauges.values()

    def _fleet(self) -> Iterator:
        alive = [w for w in self.snap.workers if w.alive]
        yield GaugeMetricFamily(
            "jobfleet_workers", "Worker processes with a live heartbeat", value=len(alive)
        )
        yield GaugeMetricFamily(
            "jobfleet_failed_jobs_recorded", "Jobs in the failure record", value=self.snap.failed_recorded
        )
        recovered = CounterMetricFamily(
            "jobfleet_job_recoveries",
            "Jobs put back on their queue because their worker's lease lapsed (killed, cut off)",
            labels=["job"],
        )
        for job, n in sorted(self.snap.recoveries.counts.items()):
            recovered.add_metric([job], n)
        yield recovered
        yield GaugeMetricFamily(
            "jobfleet_jobs_orphaned",
            "Jobs held by a worker whose lease lapsed, not yet recovered",
            value=len(self.snap.recoveries.orphaned),
        )
        outbox = CounterMetricFamily(
            "jobfleet_outbox_rows",
            "job_outbox rows the relays handled: enqueued, duplicate (their key's job was there), "
            "relayed_before (a batch sent again after a crash), failed (to the failure record)",
            labels=["outcome"],
        )
        for outcome in OUTBOX_OUTCOMES:
            outbox.add_metric([outcome], self.snap.outbox.get(outcome, 0))
        yield outbox

    def _schedules(self) -> Iterator:
        success = GaugeMetricFamily(
            "jobfleet_schedule_last_success_timestamp_seconds",
            "When the sweep last succeeded (absent: never)",
            labels=["job"],
        )
        last = GaugeMetricFamily(
            "jobfleet_schedule_last_run_timestamp_seconds", "When the sweep last ended", labels=["job"]
        )
        duration = GaugeMetricFamily(
            "jobfleet_schedule_last_run_duration_seconds", "How long the last run took", labels=["job"]
        )
        period = GaugeMetricFamily(
            "jobfleet_schedule_period_seconds", "Time between two ticks of the schedule", labels=["job"]
        )
        for s in self.snap.schedules:
            period.add_metric([s.name], s.period_s)
            if s.last_success_at is not None:
                success.add_metric([s.name], s.last_success_at)
            if s.last_run:
                last.add_metric([s.name], s.last_run["finished_at"])
                duration.add_metric([s.name], s.last_run["duration_s"])
        yield from (success, last, duration, period)

    def _domain(self) -> Iterator:
        health = self.snap.health
        if health is None:
            return
        yield GaugeMetricFamily(
            "jobfleet_domain_health_up",
            "1 if every domain-health query answered at the last check",
            value=0 if health.errors else 1,
        )
        yield GaugeMetricFamily(
            "jobfleet_domain_health_checked_timestamp_seconds",
            "When the databases were last asked",
            value=health.checked_at,
        )
        for attr, (name, help_text) in DOMAIN_METRICS.items():
            value = getattr(health, attr)
            if value is not None:
                yield GaugeMetricFamily(name, help_text, value=value)


def render(snap: Snapshot) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snap))
    return generate_latest(registry)

"""The job catalog: every job's stable name, payload model, queue and run limits.

Producers and workers share it. It names each job's handler by import path only, so that a
producer can validate payloads without importing the business logic or its database drivers.
"""

from dataclasses import dataclass
from typing import Literal

from jobfleet import keys
from jobfleet.payloads import (
    ErasureRequestRef,
    LearnerErasureRef,
    LifecycleRun,
    MessageRef,
    Payload,
    RetentionRun,
    ReviewRun,
    ServiceRef,
    SessionRef,
    Sleep,
    Sweep,
)


@dataclass(frozen=True, slots=True)
class JobSpec:
    name: str
    payload: type[Payload]
    handler: str  # "module:function", resolved by the worker
    queue: str
    kind: Literal["sweep", "queued"]
    description: str
    timeout_s: float = 60
    max_tries: int = 5
    backoff_s: float = 2  # first retry delay; doubles each try, with jitter
    max_backoff_s: float = 300
    keep_result_s: float = 3600


JOBS: tuple[JobSpec, ...] = (
    JobSpec(
        "sessions.auto_complete",
        Sweep,
        "jobs.sessions.auto_complete:run",
        keys.QUEUE_SWEEPS,
        "sweep",
        "Complete ended sessions (or send them to review) and consume their credits",
        timeout_s=300,
    ),
    JobSpec(
        "sessions.expire_holds",
        Sweep,
        "jobs.payments.expire_holds:run",
        keys.QUEUE_SWEEPS,
        "sweep",
        "Release unpaid checkout holds, confirming those Stripe says were paid",
        timeout_s=300,
    ),
    JobSpec(
        "credits.expire",
        Sweep,
        "jobs.credits.expire:run",
        keys.QUEUE_SWEEPS,
        "sweep",
        "Forfeit unused credits of enrollments past valid_until; send expiry notices",
        timeout_s=600,
    ),
    JobSpec(
        "waitlist.expire_offers",
        Sweep,
        "jobs.waitlist.expire_offers:run",
        keys.QUEUE_SWEEPS,
        "sweep",
        "Expire 48-hour waitlist offers and pass the seat to the next in line",
        timeout_s=300,
    ),
    JobSpec(
        "waitlist.offer_next",
        ServiceRef,
        "jobs.waitlist.offer_next:run",
        keys.QUEUE_DEFAULT,
        "queued",
        "Offer every free seat of a service to the next waiting students",
        timeout_s=30,
    ),
    JobSpec(
        "messages.deliver",
        MessageRef,
        "jobs.messages.deliver:run",
        keys.QUEUE_DEFAULT,
        "queued",
        "Deliver one scheduled message (contact log and teacher notification)",
        timeout_s=30,
    ),
    JobSpec(
        "messages.deliver_due",
        Sweep,
        "jobs.messages.deliver_due:run",
        keys.QUEUE_SWEEPS,
        "sweep",
        "Deliver pending scheduled messages whose time has passed",
        timeout_s=300,
    ),
    JobSpec(
        "calendar.sync_session",
        SessionRef,
        "jobs.calendar.sync_session:run",
        keys.QUEUE_CALENDAR,
        "queued",
        "Create, update or delete one session's event in the teacher's calendar",
        timeout_s=60,
        max_tries=8,
        backoff_s=5,
        max_backoff_s=900,
        keep_result_s=0,
    ),
    JobSpec(
        "calendar.sync_pending",
        Sweep,
        "jobs.calendar.sync_pending:run",
        keys.QUEUE_CALENDAR,
        "sweep",
        "Sync pending calendar rows and retry failed ones whose backoff has passed",
        timeout_s=300,
    ),
    JobSpec(
        "licenses.reconcile",
        Sweep,
        "jobs.licenses.reconcile:run",
        keys.QUEUE_SWEEPS,
        "sweep",
        "Move Pickatale teacher licenses through trial, payment, grace and expiry",
        timeout_s=600,
    ),
    JobSpec(
        "gdpr.erase_due",
        Sweep,
        "jobs.gdpr.erase_due:run",
        keys.QUEUE_SWEEPS,
        "sweep",
        "Erase students whose GDPR erasure request is due (or was left processing)",
        timeout_s=900,
        max_tries=10,
    ),
    JobSpec(
        "gdpr.erase",
        ErasureRequestRef,
        "jobs.gdpr.erase:run",
        keys.QUEUE_DEFAULT,
        "queued",
        "Erase one student now for a pending GDPR erasure request",
        timeout_s=300,
        max_tries=10,
    ),
    JobSpec(
        "learners.erase_due",
        Sweep,
        "jobs.learners.erase_due:run",
        keys.QUEUE_SWEEPS,
        "sweep",
        "Erase Pickatale learners whose erasure request is due (or was left processing)",
        # above the erasure budget (JOBFLEET_LEARNER_ERASE_BUDGET_S, 600 s) with room for the last chunk
        timeout_s=900,
        max_tries=10,
    ),
    JobSpec(
        "learners.erase",
        LearnerErasureRef,
        "jobs.learners.erase:run",
        keys.QUEUE_DEFAULT,
        "queued",
        "Erase one Pickatale learner now for a pending erasure request",
        timeout_s=900,
        max_tries=10,
    ),
    JobSpec(
        "telemetry.purge",
        RetentionRun,
        "jobs.retention.purge:run",
        keys.QUEUE_SWEEPS,
        "sweep",
        "Apply the retention policies: purge telemetry older than 90 days, and the rest",
        timeout_s=3600,
    ),
    JobSpec(
        "lifecycle.detect",
        LifecycleRun,
        "jobs.lifecycle.detect:run",
        keys.QUEUE_SWEEPS,
        "sweep",
        "Detect gaps, churn, reactivation, milestones and streaks of students; notify teachers",
        timeout_s=1800,
    ),
    JobSpec(
        "reviews.request_due",
        ReviewRun,
        "jobs.reviews.request_due:run",
        keys.QUEUE_SWEEPS,
        "sweep",
        "Ask students for a review once they completed the teacher's number of sessions",
        timeout_s=600,
    ),
    JobSpec(
        "reviews.expire",
        Sweep,
        "jobs.reviews.expire:run",
        keys.QUEUE_SWEEPS,
        "sweep",
        "Expire pending review requests past expires_at",
        timeout_s=300,
    ),
    JobSpec(
        "retention.teacher_policies",
        Sweep,
        "jobs.retention.teacher_policies:run",
        keys.QUEUE_SWEEPS,
        "sweep",
        "Apply each teacher's data retention settings: contact log, notifications, notes, erasure",
        timeout_s=3600,
    ),
    JobSpec(
        "fleet.noop",
        Sweep,
        "jobs.diagnostics:noop",
        keys.QUEUE_DEFAULT,
        "queued",
        "Do nothing: a probe of the fleet's own overhead",
        timeout_s=10,
        keep_result_s=60,
    ),
    JobSpec(
        "fleet.sleep",
        Sleep,
        "jobs.diagnostics:sleep",
        keys.QUEUE_DEFAULT,
        "queued",
        "Wait the given milliseconds: a stand-in for an I/O-bound job",
        timeout_s=70,
        keep_result_s=60,
    ),
)

CATALOG: dict[str, JobSpec] = {spec.name: spec for spec in JOBS}


class UnknownJob(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown job {name!r}; known jobs: {', '.join(sorted(CATALOG))}")
        self.name = name


def spec_for(name: str) -> JobSpec:
    try:
        return CATALOG[name]
    except KeyError:
        raise UnknownJob(name) from None

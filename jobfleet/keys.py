"""Every Redis key and queue name the fleet uses, in one place.

Job, result, retry and in-progress keys are arq's own (its constants), so that an arq worker and a
non-Python producer that writes arq's layout interoperate. Everything the fleet adds lives under
``jobfleet:``.
"""

from arq.constants import (
    abort_jobs_ss,
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)

__all__ = [
    "ALL_QUEUES",
    "QUEUE_CALENDAR",
    "QUEUE_DEFAULT",
    "QUEUE_SWEEPS",
    "in_progress_key_prefix",
    "job_key_prefix",
    "result_key_prefix",
    "retry_key_prefix",
]

# Sweeps may run for minutes; queued jobs are short and must not wait behind them, and calendar
# calls wait on third-party rate limits. One arq queue each.
QUEUE_DEFAULT = "jobfleet:queue:default"
QUEUE_SWEEPS = "jobfleet:queue:sweeps"
QUEUE_CALENDAR = "jobfleet:queue:calendar"
ALL_QUEUES = (QUEUE_DEFAULT, QUEUE_SWEEPS, QUEUE_CALENDAR)
QUEUE_ALIASES = {"default": QUEUE_DEFAULT, "sweeps": QUEUE_SWEEPS, "calendar": QUEUE_CALENDAR}

# Failure record: a sorted set of job ids by failure time, and one JSON document per failure.
FAILED_INDEX = "jobfleet:failed"
FAILED_PREFIX = "jobfleet:failed:"

# Per-worker health records (arq's single health key is shared and deleted by the first to stop).
# A worker's record is also its lease: it expires after three missed beats (workers/lease.py).
WORKERS_INDEX = "jobfleet:workers"
WORKER_PREFIX = "jobfleet:worker:"
# The jobs a worker holds under its lease: a hash job id -> queue, written by the claim itself.
WORKER_JOBS_PREFIX = "jobfleet:worker-jobs:"

# Recovery of jobs whose worker's lease lapsed (workers/recovery.py): a capped log of recoveries
# (sorted set by time), counts per job name, one note per recovered job (read when its tries run
# out), and the token that lets one worker at a time scan the fleet.
RECOVERIES = "jobfleet:recoveries"
RECOVERIES_COUNT = "jobfleet:recoveries:count"
RECOVERED_PREFIX = "jobfleet:recovered:"
RECOVERY_SCAN = "jobfleet:recovery:scan"

# Scheduler: the last tick claimed per schedule, and the last run of each scheduled job.
SCHEDULE_TICK_PREFIX = "jobfleet:schedule:tick:"
SCHEDULE_LAST_RUN = "jobfleet:schedule:last-run"
SCHEDULE_LAST_SUCCESS = "jobfleet:schedule:last-success"

# Job history: finished job ids by finish time (ms), all together and per job name, per status and
# per name and status, each capped. Members are "{status}|{job}|{job_id}", so a page of the index
# says what each job was without reading its (possibly expired) result.
HISTORY_INDEX = "jobfleet:history"
HISTORY_PREFIX = "jobfleet:history:"

# Counters per job name and outcome, read by /metrics and the dashboard.
STATS_PREFIX = "jobfleet:stats:"
STATS_MINUTE_PREFIX = "jobfleet:stats:minute:"
STATS_HOUR_PREFIX = "jobfleet:stats:hour:"

# Outbox relay: one marker per relayed outbox row (value: the row's created_at), written in the same
# script as the job, so a row relayed again after a crash before its DELETE adds nothing; and the
# relay's counters (enqueued, duplicate, relayed_before, failed), summed by every relay.
OUTBOX_RELAYED_PREFIX = "jobfleet:outbox:relayed:"
OUTBOX_STATS = "jobfleet:outbox:stats"

# arq's abort request set (job id -> request time ms), read by workers started with allow_abort_jobs.
ABORT_JOBS = abort_jobs_ss

# High-water marks of incremental jobs (job name -> ISO 8601 time), kept by the runtime.
MARKS = "jobfleet:marks"

"""One arq worker per queue, with the fleet's JSON wire format and its failure record.

arq itself fails a job without calling our code when the job cannot be decoded, names an unknown
function, has expired, or has exhausted its tries because workers died under it. All of those pass
through ``finish_failed_job``, so that is where they join the failure record.
"""

from typing import Any

import structlog
from arq.connections import RedisSettings
from arq.worker import Worker, func

from jobfleet import keys, wire
from jobfleet.catalog import JOBS, JobSpec
from jobs.deps import Deps
from workers.failures import FailureRecord
from workers.runner import JobRunner, load_handler
from workers.stats import Stats

log = structlog.get_logger("jobfleet.worker")
MAX_RAW_CHARS = 2000


class FleetWorker(Worker):
    def __init__(self, *args: Any, failures: FailureRecord | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.failures = failures

    async def finish_failed_job(self, job_id: str, result_data: bytes | None) -> None:
        raw = await self.pool.get(keys.job_key_prefix + job_id)
        try:
            result = wire.decode(result_data) if result_data else {}
        except ValueError:
            result = {}
        error = result.get("r")
        message = f"{error['error']}: {error['message']}" if isinstance(error, dict) else str(error)
        if message.startswith("JobExecutionFailed: max"):
            message += " (the worker running it stopped or was killed on every try)"
        name = result.get("f") or "<unknown>"
        try:
            payload = wire.decode(raw)["k"] if raw else result.get("k")
        except (ValueError, KeyError, TypeError):
            payload = None
        log.error(
            "job_failed",
            job=name,
            job_id=job_id,
            job_try=result.get("t"),
            error=message,
            queue=self.queue_name,
        )
        if self.failures is not None:
            await self.failures.record(
                job_id=job_id,
                job=name,
                queue=self.queue_name,
                payload=payload,
                tries=result.get("t") or 0,
                error=message,
                raw=None
                if payload is not None or raw is None
                else raw[:MAX_RAW_CHARS].decode(errors="replace"),
            )
        await super().finish_failed_job(job_id, result_data)

    async def record_health(self) -> None:
        # arq's single key per queue is overwritten by every worker and deleted by the first to stop;
        # the fleet's heartbeat writes one record per worker process instead.
        return None


def build_worker(
    queue: str,
    *,
    deps: Deps,
    failures: FailureRecord,
    stats: Stats,
    redis_settings: RedisSettings,
    max_jobs: int,
    poll_delay_s: float,
    shutdown_grace_s: float,
    burst: bool = False,
    specs: list[JobSpec] | None = None,
) -> FleetWorker:
    """A worker for one queue running the catalog's jobs of that queue (or the ``specs`` given)."""
    functions = [
        func(
            JobRunner(spec, load_handler(spec), deps, failures, stats).run,
            name=spec.name,
            # arq's own timeout is a backstop: the runner enforces the catalog's and records it
            timeout=spec.timeout_s + 10,
            keep_result=spec.keep_result_s,
            max_tries=spec.max_tries,
        )
        for spec in (specs if specs is not None else [s for s in JOBS if s.queue == queue])
    ]
    return FleetWorker(
        functions,
        queue_name=queue,
        redis_settings=redis_settings,
        failures=failures,
        burst=burst,
        handle_signals=False,
        job_completion_wait=int(shutdown_grace_s),
        max_jobs=max_jobs,
        poll_delay=poll_delay_s,
        job_serializer=wire.encode,
        job_deserializer=wire.decode,
        retry_jobs=True,
        allow_abort_jobs=True,
        health_check_interval=3600,
    )

"""The adapter between arq and one catalog job: validate the payload, run the business logic with
the catalog's limits, and turn the outcome into success, a retry with backoff, or a recorded failure.
"""

import asyncio
import time
import traceback
from collections.abc import Awaitable, Callable
from importlib import import_module
from importlib.util import find_spec
from typing import Any

import structlog
from arq import Retry
from pydantic import ValidationError
from redis.exceptions import RedisError

from jobfleet.catalog import JobSpec
from jobfleet.payloads import Payload
from jobfleet.producer import InvalidPayload, Job, Producer, ProducerUnavailable
from jobs.backoff import backoff_s
from jobs.deps import Deps
from jobs.errors import Permanent
from jobs.followups import FollowUp, Outcome, outcome
from workers import tracing
from workers.failures import FailureRecord, bounded
from workers.last_runs import LastRuns
from workers.retrying import is_transient
from workers.stats import RunningJob, Stats

Handler = Callable[[Deps, Payload], Awaitable[dict[str, Any]]]
log = structlog.get_logger("jobfleet.job")


class JobFailed(Exception):
    """Raised to arq so that it stores an unsuccessful result; the failure is already recorded."""


def load_handler(spec: JobSpec) -> Handler:
    module, _, attr = spec.handler.partition(":")
    return getattr(import_module(module), attr)


def check_handler(spec: JobSpec) -> None:
    """Fail at start-up, loudly, on a handler module that does not exist, without importing it."""
    module = spec.handler.partition(":")[0]
    try:
        found = find_spec(module)
    except ImportError:
        found = None
    if found is None:
        raise ImportError(f"job {spec.name!r}: handler module {module!r} does not exist")


async def run_job(spec: JobSpec, handler: Handler, deps: Deps, payload: dict[str, Any]) -> Outcome:
    """Run one job in this process, outside any queue: what ``jobfleet run`` does."""
    try:
        model = spec.payload.model_validate(payload)
    except ValidationError as e:
        raise InvalidPayload(spec.name, e) from None
    async with asyncio.timeout(spec.timeout_s):
        return outcome(await handler(deps, model))


async def enqueue_follow_ups(producer: Producer, follow_ups: tuple[FollowUp, ...]) -> None:
    """Enqueue what a job that succeeded asked for. Called only after it returned, i.e. after its
    transactions committed; a lost follow-up is left to the periodic sweep of the same job. The
    job's name and id are in the log context already."""
    if not follow_ups:
        return
    try:
        await producer.enqueue_many(Job(f.job, f.payload, key=f.key) for f in follow_ups)
    except (ProducerUnavailable, InvalidPayload, LookupError) as e:
        log.warning("follow_ups_not_enqueued", follow_ups=len(follow_ups), error=str(e))
        return
    log.info("follow_ups_enqueued", jobs=sorted({f.job for f in follow_ups}), count=len(follow_ups))


class JobRunner:
    """Holds what one job name needs; arq calls its ``run``."""

    def __init__(
        self,
        spec: JobSpec,
        handler: Handler | None,
        deps: Deps,
        failures: FailureRecord,
        stats: Stats,
        last_runs: LastRuns | None = None,
    ) -> None:
        self.spec = spec
        # None: imported when the first job of this name runs, so that a worker starts without
        # importing every job's libraries (the Google client alone costs ~0.1 s of each start)
        self.handler = handler
        self.deps = deps
        self.failures = failures
        self.stats = stats
        # only sweeps run on a schedule; their last run is what the dashboard's schedules page shows
        self.last_runs = last_runs if spec.kind == "sweep" else None

    async def _record_last_run(self, ctx: dict[str, Any], start: float, outcome: str, **details: Any) -> None:
        if self.last_runs is None:
            return
        duration_s = time.perf_counter() - start
        try:
            await asyncio.shield(
                self.last_runs.record(
                    self.spec.name,
                    job_id=ctx["job_id"],
                    job_try=ctx["job_try"],
                    started_at=time.time() - duration_s,
                    duration_s=duration_s,
                    outcome=outcome,
                    **details,
                )
            )
        except (RedisError, OSError) as e:
            # the run's outcome stands; only the dashboard's note of it is lost
            log.warning("last_run_not_recorded", error=str(e))

    async def run(self, ctx: dict[str, Any], *args: Any, **payload: Any) -> dict[str, Any]:
        # Every line logged during the run, by the business logic too, says which run wrote it. arq
        # runs each job in a task of its own, so the binding ends with the run.
        with structlog.contextvars.bound_contextvars(
            job=self.spec.name, job_id=ctx["job_id"], job_try=ctx["job_try"]
        ):
            if not tracing.enabled():
                return await self._run(ctx, args, payload)
            with tracing.job_run(self.spec.name, ctx["job_id"], ctx["job_try"], self.spec.queue):
                return await self._run(ctx, args, payload)

    async def _run(
        self, ctx: dict[str, Any], args: tuple[Any, ...], payload: dict[str, Any]
    ) -> dict[str, Any]:
        spec = self.spec
        job_id, job_try = ctx["job_id"], ctx["job_try"]
        self.stats.started(RunningJob(job_id, spec.name, job_try, spec.queue, time.time()))
        start = time.perf_counter()
        try:
            if args:
                raise Permanent(
                    f"job {spec.name!r} takes its payload as the document's 'k' object; "
                    f"it got {len(args)} positional argument(s) in 'a'"
                )
            if self.handler is None:
                self.handler = load_handler(spec)
            done = await run_job(spec, self.handler, self.deps, payload)
        except asyncio.CancelledError:
            # Shutdown or abort: arq puts the job back (or records the abort); the transaction rolled back.
            self.stats.ended(job_id, spec.name, "retried", time.perf_counter() - start)
            log.warning("job_interrupted", duration_ms=_ms(start))
            raise
        except Exception as exc:
            duration_ms = _ms(start)
            if is_transient(exc) and job_try < spec.max_tries:
                delay = backoff_s(
                    job_try,
                    first_s=spec.backoff_s,
                    cap_s=spec.max_backoff_s,
                    retry_after_s=getattr(exc, "retry_after_s", None),
                )
                self.stats.ended(job_id, spec.name, "retried", duration_ms / 1000)
                log.warning(
                    "job_retrying",
                    error=_describe(exc),
                    retry_in_s=round(delay, 2),
                    duration_ms=duration_ms,
                    max_tries=spec.max_tries,
                )
                await self._record_last_run(ctx, start, "retrying", error=_describe(exc))
                raise Retry(defer=delay) from exc
            self.stats.ended(job_id, spec.name, "failed", duration_ms / 1000)
            error = _describe(exc)
            if is_transient(exc):
                error = f"gave up after {job_try} tries: {error}"
            await asyncio.shield(
                self.failures.record(
                    job_id=job_id,
                    job=spec.name,
                    queue=spec.queue,
                    payload=bounded(payload),
                    tries=job_try,
                    error=error,
                    traceback="".join(traceback.format_exception(exc)),
                )
            )
            log.error("job_failed", error=error, duration_ms=duration_ms)
            await self._record_last_run(ctx, start, "failed", error=error)
            raise JobFailed(error) from None
        result = dict(done)  # the summary alone goes into the result and the logs
        self.stats.ended(job_id, spec.name, "succeeded", time.perf_counter() - start, result)
        log.info("job_succeeded", duration_ms=_ms(start), result=result)
        await asyncio.shield(enqueue_follow_ups(Producer(ctx["redis"]), done.follow_ups))
        await self._record_last_run(ctx, start, "succeeded", counts=result)
        return result


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError) and not str(exc):
        return "TimeoutError: the job ran past its timeout"
    # one line: the type says what, the message says why
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")

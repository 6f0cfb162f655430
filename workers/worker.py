"""One arq worker per queue, with the fleet's JSON wire format, its failure record and job history.

arq itself fails a job without calling our code when the job cannot be decoded, names an unknown
function, has expired, or has exhausted its tries because workers died under it. All of those pass
through ``finish_failed_job``, so that is where they join the failure record.

Every finished job joins the history (workers/history.py) inside arq's own finish transaction:
``finish_job`` and ``finish_failed_job`` are arq 0.28's, with the history writes added, and the
job taken out of the worker's lease (workers/lease.py) in the same transaction. A job the lease's
fence stopped writes nothing at its finish: another worker may already hold it.
"""

import asyncio
import time
from typing import Any

import structlog
from arq.constants import abort_jobs_ss, in_progress_key_prefix, job_key_prefix, retry_key_prefix
from arq.utils import timestamp_ms, to_ms
from arq.worker import Worker, func
from redis.exceptions import RedisError

from jobfleet import keys, wire
from jobfleet.catalog import JOBS, JobSpec
from jobfleet.redis_target import RedisTarget
from jobs.deps import Deps
from workers import recovery
from workers.claiming import Claimer, worker_jobs_key
from workers.connections import arq_pool
from workers.failures import FailureRecord
from workers.health import new_worker_id
from workers.history import HistoryWriter
from workers.last_runs import LastRuns
from workers.lease import Lease
from workers.runner import JobRunner, check_handler
from workers.stats import Stats

log = structlog.get_logger("jobfleet.worker")
MAX_RAW_CHARS = 2000
IDLE_POLLS_BEFORE_BACKOFF = 50
IDLE_POLL_DELAY_S = 0.05
ABORT_CHECK_INTERVAL_S = 0.25
# Each claim takes at most this share of the slots (5 of 100): measured here, batches of all free
# slots left the worker idle between waves (2,139 no-op jobs/s), batches of 5 kept it busy (2,374).
CLAIM_SHARE = 0.05


def _aborted(result: dict[str, Any]) -> bool:
    error = result.get("r")
    return isinstance(error, dict) and error.get("error") == "CancelledError"


def _decode(result_data: bytes | None) -> dict[str, Any]:
    try:
        result = wire.decode(result_data) if result_data else {}
    except ValueError:
        return {}
    return result if isinstance(result, dict) else {}


def _why_undecodable(raw: bytes) -> str:
    try:
        wire.decode_job(raw)
    except ValueError as e:
        return str(e).splitlines()[0]
    return "it decodes now"


# arq's Worker methods FleetWorker copies (finish_job, and finish_failed_job in _finish_failed),
# replaces (start_jobs, record_health) or wraps (main, _cancel_aborted_jobs, _poll_iteration), and the
# private one it calls, with the sha256 of their source in arq 0.28.0, the version they were read in.
# tests/workers/test_arq_surface.py fails, naming the method, when the installed arq's differs:
# read the new version, carry the change over, then update the hash.
ARQ_SURFACE = {
    "main": "45ca1591c9717466eec76e17fa958f84acf6085103d692a84ee25d9904e7f8fc",
    "finish_job": "903f09c92830d3fd8044e19cc409074d9b62143218f73c3101a1ef5f724b22ce",
    "finish_failed_job": "3e16087f318a7acfbe79189a682d732fc43a3fce1917689e96990cb14d30bee2",
    "start_jobs": "b45797cfa40bed7fe6e9b8b8100c5f5b4144fe85112155c4e355df6ed8521f5f",
    "_cancel_aborted_jobs": "54575eaf8682f95be0d6ac5946c60bfdda41500552ac52975a4375d99f170c2f",
    "_poll_iteration": "f8d39d823a0a59f27a45f1c0e80bee44e16219d5072235fbc81866402298322f",
    "record_health": "108f4b8686c9402d52162af9db7e738df0627c6baf939cbb114ac298ac1c5d4f",
    "_release_sem_dec_counter_on_complete": (
        "0ed101482e942c33a64ccbe19eb3c4d29da9497258b1ffb1380da300da9bc481"
    ),
}

# as arq's RedisSettings: conn_retries=5, conn_retry_delay=1
CONNECT_TRIES = 6
CONNECT_RETRY_DELAY_S = 1.0


class FleetWorker(Worker):
    def __init__(
        self,
        *args: Any,
        failures: FailureRecord | None = None,
        stats: Stats | None = None,
        history_max_jobs: int | None = None,
        lease: Lease | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lease = lease
        self.worker_id = lease.worker_id if lease else new_worker_id()
        self.jobs_key = worker_jobs_key(self.worker_id)
        self.fenced: set[str] = set()  # jobs the fence stopped, until their finish (which writes nothing)
        self.failures = failures
        self.stats = stats
        self.history_max_jobs = history_max_jobs
        self.history: HistoryWriter | None = None
        self.claimer: Claimer | None = None
        self.idle_polls = 0
        self.aborts_checked_at = 0.0

    async def main(self) -> None:
        # arq's create_pool tries a new connection a few times before giving up; the pool here is
        # built by us (arq_pool), so try the same way before arq's main() first talks to Redis.
        for attempt in range(CONNECT_TRIES):
            try:
                await self.pool.ping()
                break
            except (RedisError, OSError) as e:
                if attempt == CONNECT_TRIES - 1:
                    raise
                log.warning("redis_connect_retry", queue=self.queue_name, error=str(e))
                await asyncio.sleep(CONNECT_RETRY_DELAY_S)
        await super().main()

    def _history(self) -> HistoryWriter | None:
        # arq creates its pool in main(); the writer registers its script on that pool
        if self.history is None and self.history_max_jobs:
            self.history = HistoryWriter(self.pool, self.history_max_jobs)
        return self.history

    def _history_status(self, job_id: str, result_data: bytes | None) -> tuple[str, str]:
        """(job name, status) of a job arq finishes: the runner left its outcome in the stats."""
        if self.stats is not None and (known := self.stats.finished.pop(job_id, None)):
            return known
        # Rare paths: aborted while running, or arq's backstop timeout cancelled the runner.
        result = _decode(result_data)
        status = "aborted" if not result or _aborted(result) else "failed"
        return result.get("f") or "<unknown>", status

    def _fenced(self, job_id: str) -> bool:
        """Whether this finish must write nothing: the fence stopped the job, or the lease is past
        the fence's deadline (another worker may hold the job soon). The lease releases it later."""
        if job_id in self.fenced:
            self.fenced.discard(job_id)
            return True
        if self.lease is not None and self.lease.lapsing():
            self.lease.unreleased.add(job_id)
            log.warning("job_finish_dropped_lease_lapsing", job_id=job_id, queue=self.queue_name)
            return True
        return False

    async def finish_job(
        self,
        job_id: str,
        finish: bool,
        result_data: bytes | None,
        result_timeout_s: float | None,
        keep_result_forever: bool,
        incr_score: int | None,
        keep_in_progress: float | None,
    ) -> None:
        if self._fenced(job_id):
            return
        async with self.pool.pipeline(transaction=True) as tr:
            tr.hdel(self.jobs_key, job_id)
            delete_keys = []
            in_progress_key = in_progress_key_prefix + job_id
            if keep_in_progress is None:
                delete_keys += [in_progress_key]
            else:
                tr.pexpire(in_progress_key, to_ms(keep_in_progress))

            if finish:
                if result_data:
                    expire = None if keep_result_forever else result_timeout_s
                    tr.set(keys.result_key_prefix + job_id, result_data, px=to_ms(expire))
                delete_keys += [retry_key_prefix + job_id, job_key_prefix + job_id]
                tr.zrem(abort_jobs_ss, job_id)
                tr.zrem(self.queue_name, job_id)
                if history := self._history():
                    history.add(tr, job_id, *self._history_status(job_id, result_data), timestamp_ms())
            elif incr_score:
                tr.zincrby(self.queue_name, incr_score, job_id)
            if delete_keys:
                tr.delete(*delete_keys)
            await tr.execute()

    async def finish_failed_job(self, job_id: str, result_data: bytes | None) -> None:
        raw = await self.pool.get(keys.job_key_prefix + job_id)
        result = _decode(result_data)
        if _aborted(result):
            # aborted before it started: an operator's decision, not a failure to record
            log.info("job_aborted", job=result.get("f"), job_id=job_id, queue=self.queue_name)
            await self._finish_failed(job_id, result_data, result.get("f") or "<unknown>", "aborted")
            return
        error = result.get("r")
        message = f"{error['error']}: {error['message']}" if isinstance(error, dict) else str(error)
        if message.startswith("JobExecutionFailed: max"):
            if lost := await recovery.note(self.pool, job_id):
                message += (
                    f": worker lease lapsed (worker {lost['worker_id']} stopped renewing its lease while"
                    f" running try {lost['try']}; recovered by {lost['recovered_by']})"
                )
            else:
                message += " (the worker running it stopped or was killed on every try)"
        elif message.startswith("DeserializationError") and raw:
            message += f": {_why_undecodable(raw)}"
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
        await self._finish_failed(job_id, result_data, name, "failed")

    async def _finish_failed(self, job_id: str, result_data: bytes | None, name: str, status: str) -> None:
        if self._fenced(job_id):
            return
        async with self.pool.pipeline(transaction=True) as tr:
            tr.hdel(self.jobs_key, job_id)
            tr.delete(retry_key_prefix + job_id, in_progress_key_prefix + job_id, job_key_prefix + job_id)
            tr.zrem(abort_jobs_ss, job_id)
            tr.zrem(self.queue_name, job_id)
            keep_result = self.keep_result_forever or self.keep_result_s > 0
            if result_data is not None and keep_result:
                expire = 0 if self.keep_result_forever else self.keep_result_s
                tr.set(keys.result_key_prefix + job_id, result_data, px=to_ms(expire))
            if history := self._history():
                history.add(tr, job_id, name, status, timestamp_ms())
            await tr.execute()

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        # One round trip claims a batch (arq's own start_jobs takes several per job). Batches are a
        # share of the slots, claimed one after another: jobs claimed together start and end
        # together, and a worker whose hundred slots all freed at once would sit idle while it
        # claimed the next hundred.
        if self.lease is not None and self.lease.fenced:
            return  # no lease, no new jobs
        if self.claimer is None:
            self.claimer = Claimer(
                self.pool, self.queue_name, int(self.in_progress_timeout_s * 1000), self.worker_id
            )
        self.idle_polls = 0 if job_ids else self.idle_polls + 1
        batch = max(1, int(self.max_jobs * CLAIM_SHARE))
        # the first call passes every id read (the queue's front is mostly jobs running already);
        # the next ones go on after the last id claimed, a few ids at a time
        remaining, window = job_ids, len(job_ids)
        while remaining and (free := self.max_jobs - self.job_counter) > 0:
            want = min(free, batch)
            ids = remaining[:window]
            claimed = await self.claimer.claim(ids, want, timestamp_ms())
            if claimed and self.lease is not None and self.lease.fenced:
                # fenced while the claim was on its way: give the jobs back at the next renewal
                self.lease.unreleased.update(job_id for job_id, _ in claimed)
                return
            for job_id, score in claimed:
                await self.sem.acquire()
                self.job_counter += 1
                task = self.loop.create_task(self.run_job(job_id, score))
                task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
                self.tasks[job_id] = task
            if len(claimed) == want:  # the script stopped at the last id it claimed
                remaining = remaining[ids.index(claimed[-1][0].encode()) + 1 :]
            else:  # it looked at every id it was given
                remaining = remaining[len(ids) :]
            window = 2 * batch

    def fence(self) -> list[str]:
        """Cancel every running job (the lease could not be renewed); returns their ids."""
        stopped = [job_id for job_id, task in self.job_tasks.items() if not task.done()]
        for job_id in stopped:
            self.fenced.add(job_id)
            self.job_tasks[job_id].cancel()
        return stopped

    async def _cancel_aborted_jobs(self) -> None:
        # arq reads the abort set on every poll, a round trip each; an abort can wait a moment.
        now = time.monotonic()
        if now - self.aborts_checked_at >= ABORT_CHECK_INTERVAL_S:
            self.aborts_checked_at = now
            await super()._cancel_aborted_jobs()

    async def _poll_iteration(self) -> None:
        await super()._poll_iteration()
        # Poll every poll_delay while there is work; after a while with an empty queue, back off
        # so that idle workers do not keep Redis busy.
        if self.idle_polls > IDLE_POLLS_BEFORE_BACKOFF:
            await asyncio.sleep(IDLE_POLL_DELAY_S)

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
    redis_target: RedisTarget,
    max_jobs: int,
    poll_delay_s: float,
    shutdown_grace_s: float,
    burst: bool = False,
    specs: list[JobSpec] | None = None,
    history_max_jobs: int | None = None,
    last_runs: LastRuns | None = None,
    lease: Lease | None = None,
) -> FleetWorker:
    """A worker for one queue running the catalog's jobs of that queue (or the ``specs`` given)."""
    specs = specs if specs is not None else [s for s in JOBS if s.queue == queue]
    for spec in specs:
        check_handler(spec)
    functions = [
        func(
            JobRunner(spec, None, deps, failures, stats, last_runs).run,
            name=spec.name,
            # arq's own timeout is a backstop: the runner enforces the catalog's and records it
            timeout=spec.timeout_s + 10,
            keep_result=spec.keep_result_s,
            max_tries=spec.max_tries,
        )
        for spec in specs
    ]
    return FleetWorker(
        functions,
        queue_name=queue,
        redis_pool=arq_pool(redis_target, queue),
        failures=failures,
        stats=stats,
        history_max_jobs=history_max_jobs,
        lease=lease,
        burst=burst,
        handle_signals=False,
        job_completion_wait=int(shutdown_grace_s),
        max_jobs=max_jobs,
        poll_delay=poll_delay_s,
        job_serializer=wire.encode_result,
        job_deserializer=wire.decode_job,
        retry_jobs=True,
        allow_abort_jobs=True,
        health_check_interval=3600,
    )

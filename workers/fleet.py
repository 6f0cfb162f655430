"""A worker process: one arq worker per queue, the scheduler, the outbox relay and the heartbeat,
supervised.

arq's worker exits when Redis goes away; here each queue's worker is rebuilt with backoff until
Redis answers again. SIGTERM stops picking new jobs, gives running ones ``shutdown_grace_s`` to
finish, and puts any still running back on the queue (arq re-runs a cancelled job).

Each beat renews the process's lease on its running jobs; every half beat the process looks for
workers whose lease lapsed and recovers their jobs (workers/lease.py, workers/recovery.py). A
process that cannot renew its lease stops its jobs before others may recover them.
"""

import asyncio
import contextlib
import signal

import structlog
from redis.exceptions import RedisError

from jobfleet.catalog import JOBS
from jobfleet.connect import connect
from jobfleet.settings import Settings
from jobs.deps import Deps
from jobs.retention.policies import load_policies
from workers import probe, tracing
from workers.failures import FailureRecord
from workers.health import Heartbeat, new_worker_id
from workers.last_runs import LastRuns
from workers.lease import Lease
from workers.marks import RedisMarks
from workers.outbox import OutboxRelay
from workers.recovery import Recovery
from workers.runner import load_handler
from workers.scheduler import Scheduler, load_schedules
from workers.stats import Stats
from workers.worker import FleetWorker, build_worker

log = structlog.get_logger("jobfleet.fleet")
MAX_RECONNECT_DELAY_S = 30


class Fleet:
    def __init__(
        self,
        settings: Settings,
        queues: list[str],
        *,
        burst: bool = False,
        scheduler: bool | None = None,
        outbox: bool | None = None,
    ) -> None:
        self.settings = settings
        self.queues = queues
        self.burst = burst
        self.run_scheduler = settings.scheduler_enabled if scheduler is None else scheduler
        self.run_outbox = settings.outbox_relay_enabled if outbox is None else outbox
        # fail at start-up, loudly, on a bad schedules or retention file
        self.schedules = load_schedules(settings.schedules_file) if self.run_scheduler else []
        load_policies(settings.retention_file)
        # Import every job module now: an import inside the running loop stalls it (seconds for
        # the Google clients on a busy machine), and a stalled loop cannot renew its lease.
        for spec in JOBS:
            if spec.queue in queues:
                load_handler(spec)
        self.worker_id = new_worker_id()
        self.stopping = asyncio.Event()
        self.workers: dict[str, FleetWorker] = {}
        self.retiring: set[asyncio.Task] = set()
        self.retired_workers: set[FleetWorker] = set()
        self.lease: Lease | None = None

    def stop(self, signum: int | None = None) -> None:
        if self.stopping.is_set():
            return
        log.info(
            "fleet_stopping",
            signal=signal.Signals(signum).name if signum else None,
            grace_s=self.settings.shutdown_grace_s,
        )
        self.stopping.set()
        for worker in self.workers.values():
            worker.handle_sig_wait_for_completion(signal.SIGTERM)

    async def run(self) -> None:
        settings = self.settings
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop, sig)
        redis = connect(settings.redis_target)
        deps = Deps.from_settings(settings).with_marks(RedisMarks(redis))
        if tracing.configure(settings, [deps.pinteach, deps.pickatale]):
            log.info("tracing_on", service=settings.otel_service_name or "jobfleet")
        stats = Stats()
        failures = FailureRecord(redis)
        heartbeat = Heartbeat(
            redis, self.worker_id, self.queues, settings.worker_max_jobs, stats, settings.health_interval_s
        )
        self.lease = Lease(redis, self.worker_id, settings.health_interval_s, self._fence)
        self.lease.start()
        recovery = Recovery(redis, self.worker_id, settings.health_interval_s)
        background = [
            asyncio.create_task(self._beat(heartbeat, self.lease)),
            asyncio.create_task(self._recover(recovery)),
        ]
        if self.run_scheduler:
            background.append(asyncio.create_task(Scheduler(redis, self.schedules).run()))
        if self.run_outbox:
            background.append(asyncio.create_task(OutboxRelay.from_settings(settings, redis).run()))
        log.info(
            "fleet_started",
            worker_id=self.worker_id,
            queues=self.queues,
            schedules=[s.name for s in self.schedules],
            outbox_relay=self.run_outbox,
            concurrency=settings.worker_max_jobs,
        )
        try:
            last_runs = LastRuns(redis)
            await asyncio.gather(*(self._supervise(q, deps, failures, stats, last_runs) for q in self.queues))
        finally:
            # jobs of workers that lost Redis still use the databases: their grace ends first
            await asyncio.gather(*self.retiring, return_exceptions=True)
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            self.lease.stop()
            with contextlib.suppress(RedisError, OSError):
                await self.lease.release_fenced()
            with contextlib.suppress(RedisError, OSError):
                await heartbeat.remove()
            await asyncio.to_thread(tracing.shutdown)  # export the last spans (blocks: a thread)
            await deps.close()
            await redis.aclose()
            log.info("fleet_stopped", worker_id=self.worker_id, jobs=dict(stats.totals))

    async def _supervise(
        self, queue: str, deps: Deps, failures: FailureRecord, stats: Stats, last_runs: LastRuns
    ) -> None:
        settings = self.settings
        delay_s = 1.0
        while not self.stopping.is_set():
            worker = build_worker(
                queue,
                deps=deps,
                failures=failures,
                stats=stats,
                redis_target=settings.redis_target,
                max_jobs=settings.worker_max_jobs,
                poll_delay_s=settings.worker_poll_delay_s,
                shutdown_grace_s=settings.shutdown_grace_s,
                burst=self.burst,
                history_max_jobs=settings.history_max_jobs,
                last_runs=last_runs,
                lease=self.lease,
            )
            self.workers[queue] = worker
            try:
                await worker.async_run()
            except asyncio.CancelledError:
                await _close(worker)
                if self.stopping.is_set():
                    return
                raise
            except (RedisError, OSError) as e:
                if self.burst:  # a one-off run reports the outage rather than wait it out
                    raise
                if "redis" in worker.ctx:
                    delay_s = 1.0  # it had connected (arq puts its pool in ctx): a new outage
                running = [t for t in worker.tasks.values() if not t.done()]
                log.error(
                    "worker_redis_lost",
                    queue=queue,
                    redis=settings.redis_target.describe(),
                    error=str(e),
                    reconnect_in_s=delay_s,
                    running=len(running),
                )
                self._retire(worker, running)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, MAX_RECONNECT_DELAY_S)
                continue
            except Exception as e:
                # arq's run_job raises out of the worker on some malformed job documents (a
                # non-numeric "t" or "et"): one bad entry in Redis must not stop the queue. The
                # entry keeps its in-progress key, so the new worker passes it by.
                if self.burst:
                    raise
                if "redis" in worker.ctx:
                    delay_s = 1.0
                running = [t for t in worker.tasks.values() if not t.done()]
                log.error(
                    "worker_crashed",
                    queue=queue,
                    error=f"{type(e).__name__}: {e}",
                    restart_in_s=delay_s,
                    running=len(running),
                    exc_info=True,
                )
                self._retire(worker, running)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, MAX_RECONNECT_DELAY_S)
                continue
            await _close(worker)
            if self.burst:
                return

    def _retire(self, worker: FleetWorker, running: list[asyncio.Task]) -> None:
        """Let a worker that lost Redis (or crashed) finish its running jobs in the background, then
        close it.

        Cancelling them at once would turn every blip into re-runs. Left running, a job whose Redis
        is back by the time it ends records its result as usual; one still running after
        ``shutdown_grace_s`` is cancelled, as on shutdown. If the outage outlasts two beats, the
        lease's fence stops them first (the process can no longer renew its lease either), and
        other workers recover them once the lease lapses.
        """

        async def retire() -> None:
            self.retired_workers.add(worker)
            if running:
                await asyncio.wait(running, timeout=self.settings.shutdown_grace_s)
            for task in running:
                task.cancel()
            outcomes = await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
            unrecorded = sum(isinstance(o, Exception) for o in outcomes)
            if unrecorded:
                # arq re-runs them when their in-progress keys expire; the jobs are built for that
                log.warning("jobs_unrecorded_by_retired_worker", queue=worker.queue_name, jobs=unrecorded)
            worker.tasks.clear()
            self.retired_workers.discard(worker)
            await _close(worker)

        task = asyncio.create_task(retire())
        self.retiring.add(task)
        task.add_done_callback(self.retiring.discard)

    async def _recover(self, recovery: Recovery) -> None:
        """Scan for lapsed leases every half beat: a lease lapses at most one beat after the kill
        it follows, so a job starts again within 3.5 beats of the kill (the issue's target: 3 beats
        plus 5 s)."""
        while True:
            try:
                async with asyncio.timeout(recovery.period_s * 2):
                    await recovery.scan()
            except (RedisError, OSError, TimeoutError) as e:
                log.warning("recovery_scan_failed", error=str(e) or type(e).__name__)
            await asyncio.sleep(recovery.period_s)

    def _fence(self) -> list[str]:
        """The lease could not be renewed: stop every running job, retiring workers' included."""
        return [job_id for w in (*self.workers.values(), *self.retired_workers) for job_id in w.fence()]

    async def _beat(self, heartbeat: Heartbeat, lease: Lease) -> None:
        probe_file = self.settings.health_file
        while True:
            redis_ok = False
            try:
                # a beat that hangs (Redis unreachable without an error) must not hold up the next
                async with asyncio.timeout(heartbeat.interval_s):
                    lease.renewed(await heartbeat.beat())
                    redis_ok = True
                    await lease.release_fenced()
            except (RedisError, OSError, TimeoutError) as e:
                log.warning("heartbeat_failed", error=str(e) or type(e).__name__)
            if probe_file is not None:
                try:
                    probe.record(probe_file, worker_id=self.worker_id, redis_ok=redis_ok)
                except OSError as e:
                    log.warning("health_file_failed", path=str(probe_file), error=str(e))
            await asyncio.sleep(heartbeat.interval_s)


async def _close(worker: FleetWorker) -> None:
    """Close a worker whose Redis may be gone: its connection pool is released either way."""
    try:
        await worker.close()
    except (RedisError, OSError, asyncio.CancelledError):
        # gathering cancelled jobs re-raises their cancellation; deleting arq's health key fails
        # without Redis: either way close() stopped before releasing its pool
        if (pool := worker.ctx.get("redis")) is not None:
            with contextlib.suppress(RedisError, OSError):
                await pool.close(close_connection_pool=True)

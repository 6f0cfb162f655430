"""The producer library: validate a payload against the catalog and put the job in Redis.

Needs only arq, redis and pydantic. Usage::

    async with Producer.from_url("redis://127.0.0.1:6379/0") as producer:
        job_id = await producer.enqueue("messages.deliver", {"message_id": mid}, key=mid,
                                        defer_until=scheduled_for)
        ...
        await producer.cancel(job_id)

    # in the caller's PostgreSQL transaction (asyncpg or SQLAlchemy): the relay enqueues it at commit
    async with engine.begin() as conn:
        await conn.execute(messages.insert().values(...))
        job_id = await producer.enqueue_in_transaction(conn, "messages.deliver", {"message_id": mid},
                                                       key=mid, defer_until=scheduled_for)

Behind Redis Sentinel: ``Producer.from_url("redis+sentinel://h1:26379,h2:26379/mymaster/0")``. With
``durable_replicas=1`` an enqueue returns only once a replica holds the job (Redis ``WAIT``): Redis
replicates asynchronously, so without it a job acknowledged just before a failover can vanish.
"""

import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Self, TypeVar

from arq.constants import expires_extra_ms
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from jobfleet import keys, outbox, wire
from jobfleet.catalog import JobSpec, spec_for
from jobfleet.connect import connect
from jobfleet.redis_target import RedisTarget

try:  # OpenTelemetry is optional: the producer needs only arq, redis and pydantic
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind

    _tracer: Any = trace.get_tracer("jobfleet.producer")
except ImportError:  # pragma: no cover - exercised by the producer's clean-venv test
    _tracer = None

# One job, created only if neither a queued/running job nor a kept result has its id.
_ENQUEUE = """
if redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
return 1
"""

# Remove a job that has not started. Touching the in-progress key makes a worker that is between
# reading the queue and claiming this job back off (its WATCH on that key fails).
_CANCEL = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local removed = 0
for i = 3, #KEYS do removed = removed + redis.call('ZREM', KEYS[i], ARGV[1]) end
if removed > 0 then
  redis.call('DEL', KEYS[2])
  redis.call('SET', KEYS[1], 'cancelled', 'PX', 1000)
end
return removed
"""


T = TypeVar("T")
# A key names one job (a message id, a session id, a tick): it goes into the job's id and Redis keys.
MAX_KEY_CHARS = 200


class InvalidPayload(ValueError):
    """A payload that does not fit its job's model; names the job and each bad field."""

    def __init__(self, job: str, error: ValidationError) -> None:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(payload)'}: {e['msg']}" for e in error.errors()
        )
        super().__init__(f"invalid payload for job {job!r}: {problems}")
        self.job = job
        self.fields = [".".join(str(p) for p in e["loc"]) for e in error.errors()]


class ProducerUnavailable(RuntimeError):
    """Redis did not take the job: nothing was enqueued, the caller must retry or fail."""


class NotReplicated(ProducerUnavailable):
    """Durable enqueue: the master took the job but too few replicas confirmed it in time, so a
    failover now could lose it. Enqueue again with the same key: that adds nothing if it is there."""


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    key: str | None = None
    defer_until: datetime | None = None
    defer_by: timedelta | float | None = None


def destination(queue: str) -> str:
    """A queue's short name (``default``) as messaging spans name their destination."""
    return queue.rsplit(":", 1)[-1]


def validate(name: str, payload: Mapping[str, Any] | None) -> tuple[JobSpec, dict[str, Any]]:
    spec = spec_for(name)
    try:
        model = spec.payload.model_validate(dict(payload or {}))
    except ValidationError as e:
        raise InvalidPayload(name, e) from None
    return spec, model.model_dump(mode="json")


def _check_key(name: str, key: str | None) -> None:
    if key is None:
        return
    if len(key) > MAX_KEY_CHARS:
        raise ValueError(
            f"key for job {name!r} is {len(key)} characters; the limit is {MAX_KEY_CHARS}: a key is an id"
        )
    try:
        key.encode()
    except UnicodeEncodeError as e:
        raise ValueError(f"key for job {name!r} is not valid text: {e.reason}") from None


@contextmanager
def _sending(destination: str, count: int) -> Iterator[dict[str, str] | None]:
    """A PRODUCER span around an enqueue, and the W3C context the job documents carry: the caller's
    trace (a web request, say) continues into the job's run. Without a tracer configured in the
    process, nothing is injected."""
    if _tracer is None:
        yield None
        return
    attributes = {
        "messaging.system": "jobfleet",
        "messaging.operation.name": "send",
        "messaging.operation.type": "send",
        "messaging.destination.name": destination,
        "messaging.batch.message_count": count,
    }
    with _tracer.start_as_current_span(f"send {destination}", kind=SpanKind.PRODUCER, attributes=attributes):
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        yield wire.trace_context(carrier)


def job_id_for(name: str, key: str | None) -> str:
    return f"{name}:{key}" if key else uuid.uuid4().hex


def _score_ms(now_ms: int, defer_until: datetime | None, defer_by: timedelta | float | None) -> int:
    if defer_until is not None and defer_by is not None:
        raise ValueError("give defer_until or defer_by, not both")
    if defer_until is not None:
        if defer_until.tzinfo is None:
            raise ValueError("defer_until must be timezone-aware")
        return int(defer_until.astimezone(UTC).timestamp() * 1000)
    if defer_by is not None:
        seconds = defer_by.total_seconds() if isinstance(defer_by, timedelta) else float(defer_by)
        return now_ms + int(seconds * 1000)
    return now_ms


def prepare(
    job: Job, now_ms: int, trace_context: dict[str, str] | None = None
) -> tuple[list[str], list[Any], str]:
    """Validate a job and lay it out for the enqueue script: (keys, args, job id); the document
    carries ``trace_context`` as its ``"tc"``. Raises UnknownJob, InvalidPayload or ValueError
    (key, size, deferral) before anything reaches Redis."""
    spec, payload = validate(job.name, job.payload)
    _check_key(job.name, job.key)
    job_id = job_id_for(job.name, job.key)
    document = wire.job_document(spec.name, payload, now_ms, trace_context)
    if len(document) > wire.MAX_JOB_BYTES:
        raise ValueError(
            f"payload for job {job.name!r} is {len(document)} bytes; the limit is "
            f"{wire.MAX_JOB_BYTES}: a job carries ids, not documents"
        )
    score = _score_ms(now_ms, job.defer_until, job.defer_by)
    expires_ms = max(score - now_ms, 0) + expires_extra_ms
    job_keys = [keys.job_key_prefix + job_id, keys.result_key_prefix + job_id, spec.queue]
    return job_keys, [document, expires_ms, score, job_id], job_id


class Producer:
    def __init__(self, redis: Redis, *, durable_replicas: int = 0, durable_timeout_s: float = 1.0) -> None:
        self.redis = redis
        self.durable_replicas = durable_replicas
        self.durable_timeout_s = durable_timeout_s
        self._enqueue = redis.register_script(_ENQUEUE)
        self._cancel = redis.register_script(_CANCEL)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        sentinels: str | None = None,
        master: str | None = None,
        durable_replicas: int = 0,
        durable_timeout_s: float = 1.0,
    ) -> Self:
        """A producer for a ``redis://`` or ``redis+sentinel://`` URL (see ``jobfleet.redis_target``)."""
        target = RedisTarget.parse(url, sentinels=sentinels, master=master)
        return cls(connect(target), durable_replicas=durable_replicas, durable_timeout_s=durable_timeout_s)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.redis.aclose()

    def prepare(
        self, job: Job, now_ms: int, trace_context: dict[str, str] | None = None
    ) -> tuple[list[str], list[Any], str]:
        return prepare(job, now_ms, trace_context)

    async def enqueue(
        self,
        name: str,
        payload: Mapping[str, Any] | None = None,
        *,
        key: str | None = None,
        defer_until: datetime | None = None,
        defer_by: timedelta | float | None = None,
    ) -> str:
        """Enqueue one job and return its id. With ``key``, a second enqueue while the first job is
        queued, running or its result kept returns the same id and adds nothing."""
        job = Job(name, payload or {}, key, defer_until, defer_by)
        with _sending(destination(spec_for(name).queue), 1) as context:
            job_keys, args, job_id = self.prepare(job, wire.now_ms(), context)
            failure = f"job {name!r} was not enqueued"
            if not self.durable_replicas:
                await self._reconnecting(lambda: self._enqueue(keys=job_keys, args=args), failure)
                return job_id

            async def send(pipe: Any) -> None:
                await self._enqueue(keys=job_keys, args=args, client=pipe)

            await self._reconnecting(lambda: self._pipelined(send, 1, f"job {job_id!r}"), failure)
            return job_id

    async def enqueue_many(self, jobs: Iterable[Job]) -> list[str]:
        """Validate every job first, then enqueue them all through one pipeline."""
        jobs = list(jobs)
        queues = {spec_for(job.name).queue for job in jobs}
        with _sending(destination(queues.pop()) if len(queues) == 1 else "(several)", len(jobs)) as context:
            return await self._enqueue_many(jobs, context)

    async def _enqueue_many(self, jobs: list[Job], context: dict[str, str] | None) -> list[str]:
        now = wire.now_ms()
        prepared = [self.prepare(job, now, context) for job in jobs]

        async def send(pipe: Any) -> None:
            for job_keys, args, _ in prepared:
                await self._enqueue(keys=job_keys, args=args, client=pipe)

        what = f"{len(prepared)} jobs"
        await self._reconnecting(
            lambda: self._pipelined(send, len(prepared), what), f"{what} were not enqueued"
        )
        return [job_id for _, _, job_id in prepared]

    async def enqueue_in_transaction(
        self,
        conn: Any,
        name: str,
        payload: Mapping[str, Any] | None = None,
        *,
        key: str | None = None,
        defer_until: datetime | None = None,
        defer_by: timedelta | float | None = None,
        trace_context: Mapping[str, str] | None = None,
    ) -> str:
        """Write the job as a ``job_outbox`` row through ``conn`` (an asyncpg Connection inside a
        transaction, or a SQLAlchemy AsyncConnection) and return its id; the fleet's relay enqueues it
        once the caller's transaction commits, and never if it rolls back. Validation is the same as
        ``enqueue``'s and happens before the row is written; Redis is not touched here. The row's
        trace context is ``trace_context`` if given, else the current one (as ``enqueue`` injects)."""
        job = Job(name, payload or {}, key or None, defer_until, defer_by)
        spec, clean = validate(name, job.payload)
        with _sending(destination(spec.queue), 1) as current:
            tc = wire.trace_context(dict(trace_context)) if trace_context else current
            _, (_, _, score, _), _ = prepare(job, wire.now_ms(), tc)  # the same checks as enqueue's
            deferred = defer_until is not None or defer_by is not None
            run_at = datetime.fromtimestamp(score / 1000, UTC) if deferred else None
            outbox_id = await outbox.insert_row(conn, name, clean, job.key, run_at, tc)
        return outbox.job_id(name, job.key, outbox_id)

    async def _pipelined(self, add: Callable[[Any], Awaitable[None]], count: int, what: str) -> None:
        """Send ``count`` scripts in one pipeline; when durable, WAIT on the same connection (it
        counts the replicas that acknowledged this connection's writes)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            await add(pipe)
            if self.durable_replicas:
                pipe.execute_command("WAIT", self.durable_replicas, int(self.durable_timeout_s * 1000))
            results = await pipe.execute()
        if self.durable_replicas and (acked := int(results[count])) < self.durable_replicas:
            raise NotReplicated(
                f"{what} reached the Redis master but {acked} of {self.durable_replicas} replica(s) "
                f"confirmed within {self.durable_timeout_s:g} s: a failover now could lose it; "
                "enqueue again with the same key"
            )

    async def cancel(self, job_id: str) -> bool:
        """Cancel a job that has not started yet (a deferred one, typically). False if it is running,
        finished or unknown. After a cancel the same key can be enqueued anew."""
        job_keys = [keys.in_progress_key_prefix + job_id, keys.job_key_prefix + job_id, *keys.ALL_QUEUES]
        return bool(
            await self._reconnecting(
                lambda: self._cancel(keys=job_keys, args=[job_id]), f"job {job_id!r} was not cancelled"
            )
        )

    async def _reconnecting(self, call: Callable[[], Awaitable[T]], failure: str) -> T:
        """Run ``call``, once more on a connection error, else raise ProducerUnavailable.

        After a Redis restart the client's pooled connections are dead, and the first command on
        one fails although Redis is back; the second try opens a new connection. Trying twice is
        safe: the job ids are fixed before the first try and the scripts add nothing for an id
        that exists, so a first try that did reach Redis makes the second a no-op (a cancel then
        reports False: the job is cancelled all the same).
        """
        try:
            return await call()
        except RedisConnectionError:
            pass
        except (RedisTimeoutError, OSError) as e:
            raise ProducerUnavailable(f"{failure}: Redis is unreachable ({e})") from e
        try:
            return await call()
        except (RedisConnectionError, RedisTimeoutError, OSError) as e:
            raise ProducerUnavailable(f"{failure}: Redis is unreachable ({e})") from e

"""A claimed batch of outbox rows into Redis: one script call creates every job, the failure record
takes the rows that cannot become one, all in one round trip.

Each row's job id is fixed by the row (``{job}:{job_key}``, else ``{job}:outbox-{id}``) and the
script writes a marker per row (its created_at) beside the job. A batch sent again because its
relay died, or lost PostgreSQL, between Redis and the commit of its DELETE finds the markers and
adds nothing, even where the first job has run and left no result (``keep_result_s=0``). A keyed row
whose id is already queued, running or kept adds nothing either: arq's own idempotency by key.
Once a batch's DELETE has committed no pass can come again, so its markers are removed in the next
batch's round trip: only the markers of batches whose commit never happened stay, and those are
the ones that must last.
"""

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from jobfleet import keys, outbox, wire
from jobfleet.catalog import CATALOG, UnknownJob
from jobfleet.producer import Job, NotReplicated, prepare
from workers.failures import FailureRecord, bounded

# A marker left by a batch whose commit never happened must outlive the rows' return to the outbox
# (a relay's transaction is ended by PostgreSQL after 60 s idle; a database outage may last hours).
# Committed batches' markers are removed, so a long lifetime costs little memory.
RELAYED_MARKER_TTL_S = 7 * 86400

# KEYS[1]: the relay's counters; then four per row: job, result, queue, marker. ARGV[1]: marker TTL
# (ms); then five per row: document, expiry (ms), score, job id, marker value. Returns per row:
# 1 enqueued, 0 its id is queued, running or kept already, 2 relayed before.
_RELAY = """
local out = {}
local n = {0, 0, 0}
for i = 0, (#KEYS - 1) / 4 - 1 do
  local k, a = 1 + 4 * i, 2 + 5 * i
  local status = 2
  local before = redis.call('GET', KEYS[k + 4])
  -- written every time, so that a WAIT after this call also covers the jobs of an earlier pass
  redis.call('SET', KEYS[k + 4], ARGV[a + 4], 'PX', ARGV[1])
  if before ~= ARGV[a + 4] then
    status = 0
    if redis.call('EXISTS', KEYS[k + 1], KEYS[k + 2]) == 0 then
      redis.call('SET', KEYS[k + 1], ARGV[a], 'PX', ARGV[a + 1])
      redis.call('ZADD', KEYS[k + 3], ARGV[a + 2], ARGV[a + 3])
      status = 1
    end
  end
  out[i + 1] = status
  n[status + 1] = n[status + 1] + 1
end
if n[2] > 0 then redis.call('HINCRBY', KEYS[1], 'enqueued', n[2]) end
if n[1] > 0 then redis.call('HINCRBY', KEYS[1], 'duplicate', n[1]) end
if n[3] > 0 then redis.call('HINCRBY', KEYS[1], 'relayed_before', n[3]) end
return out
"""
_SHA = hashlib.sha1(_RELAY.encode()).hexdigest()
OUTCOMES = {1: "enqueued", 0: "duplicate", 2: "relayed_before"}


@dataclass
class Plan:
    """A batch laid out for Redis: the script's keys and arguments, and the failures to record."""

    keys: list[str] = field(default_factory=lambda: [keys.OUTBOX_STATS])
    args: list[Any] = field(default_factory=lambda: [RELAYED_MARKER_TTL_S * 1000])
    job_ids: list[str] = field(default_factory=list)
    markers: list[str] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)


def _refusal(row: Any) -> str | None:
    if not isinstance(row.payload, dict):
        return f"outbox row {row.id}: payload must be a JSON object, not {type(row.payload).__name__}"
    return None


def plan(rows: Sequence[Any], now_ms: int) -> Plan:
    """Validate each row as the producer would and lay the batch out; a row that names no job, or
    whose payload its model refuses, goes to the failure record with the reason instead."""
    batch = Plan()
    for row in sorted(rows, key=lambda r: r.id):
        key = row.job_key or f"{outbox.OUTBOX_KEY_PREFIX}{row.id}"
        job_id = outbox.job_id(row.job, row.job_key, row.id)
        try:
            if refusal := _refusal(row):
                raise ValueError(refusal)
            job = Job(row.job, row.payload, key, defer_until=row.run_at)
            job_keys, job_args, job_id = prepare(job, now_ms, wire.trace_context(row.trace_context))
        except (UnknownJob, ValueError) as e:
            spec = CATALOG.get(row.job)
            batch.failures.append(
                {
                    "job_id": job_id,
                    "job": row.job,
                    "queue": spec.queue if spec else "outbox",
                    "payload": bounded(row.payload),
                    "tries": 0,
                    "error": f"outbox row {row.id} was not enqueued: {e}",
                }
            )
            continue
        marker = keys.OUTBOX_RELAYED_PREFIX + str(row.id)
        batch.keys += [*job_keys, marker]
        batch.markers.append(marker)
        batch.args += [*job_args, f"{row.created_at.timestamp():.6f}"]
        batch.job_ids.append(job_id)
    return batch


class Pusher:
    def __init__(self, redis: Redis, *, durable_replicas: int = 0, durable_timeout_s: float = 1.0) -> None:
        self.redis = redis
        # Behind Sentinel: commit the DELETE only once this many replicas hold the jobs (WAIT on
        # the same connection, in the same round trip), so a failover cannot take them back.
        self.durable_replicas = durable_replicas
        self.durable_timeout_s = durable_timeout_s
        self._spent: list[str] = []  # markers of batches whose DELETE committed

    def committed(self, batch: Plan) -> None:
        """The batch's DELETE committed: its markers can go (with the next batch's round trip)."""
        self._spent += batch.markers

    async def push(self, rows: Sequence[Any]) -> tuple[Counter[str], Plan]:
        """Send the batch; counts of rows enqueued, duplicate, relayed_before and failed."""
        batch = plan(rows, wire.now_ms())
        statuses = await self._send(batch)
        counts = Counter(OUTCOMES[int(s)] for s in statuses)
        counts["failed"] = len(batch.failures)
        return counts, batch

    async def _send(self, batch: Plan) -> list[int]:
        for attempt in (1, 2):
            spent = self._spent[:]
            async with self.redis.pipeline(transaction=False) as pipe:
                if spent:
                    pipe.unlink(*spent)
                if batch.job_ids:
                    pipe.evalsha(_SHA, len(batch.keys), *batch.keys, *batch.args)
                for failure in batch.failures:
                    FailureRecord.stage(pipe, **failure)
                if batch.failures:
                    pipe.hincrby(keys.OUTBOX_STATS, "failed", len(batch.failures))
                if self.durable_replicas:
                    pipe.execute_command("WAIT", self.durable_replicas, int(self.durable_timeout_s * 1000))
                try:
                    replies = await pipe.execute()
                except NoScriptError:
                    if attempt == 2:
                        raise
                    # a restarted or flushed Redis forgot the script; the failures written meanwhile
                    # are written again, the same documents under the same keys
                    await self.redis.script_load(_RELAY)
                    continue
            del self._spent[: len(spent)]
            if self.durable_replicas and (acked := int(replies[-1])) < self.durable_replicas:
                raise NotReplicated(
                    f"a batch of {len(batch.job_ids)} outbox jobs reached the Redis master but {acked} of "
                    f"{self.durable_replicas} replica(s) confirmed within {self.durable_timeout_s:g} s; "
                    "its rows stay in the outbox"
                )
            return list(replies[1 if spent else 0]) if batch.job_ids else []
        raise AssertionError("unreachable")

"""The failure record: every job that failed for good, where ops can list, retry or delete it.

arq keeps no traceback and no list of failed jobs; a failed result key expires after an hour. Here
a failure is a JSON document under ``jobfleet:failed:{job_id}`` indexed by time in a sorted set, so
pages are ZREVRANGE slices and nothing is ever found with KEYS or SCAN.
"""

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from jobfleet import keys, wire
from jobfleet.catalog import CATALOG
from jobfleet.producer import InvalidPayload, Producer

MAX_TRACEBACK_CHARS = 20_000
PAYLOAD_PREVIEW_CHARS = 2000


def bounded(payload: Any) -> Any:
    """The payload as the failure record keeps it: whole, unless a producer sent a document."""
    size = len(wire.encode(payload))
    if size <= wire.MAX_JOB_BYTES:
        return payload
    return {
        "_truncated": True,
        "bytes": size,
        "preview": wire.encode(payload)[:PAYLOAD_PREVIEW_CHARS].decode(errors="replace"),
    }


class FailureRecord:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def record(self, **failure: Any) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            self.stage(pipe, **failure)
            await pipe.execute()

    @staticmethod
    def stage(
        pipe: Pipeline,
        *,
        job_id: str,
        job: str,
        queue: str,
        payload: Any,
        tries: int,
        error: str,
        traceback: str | None = None,
        raw: str | None = None,
    ) -> None:
        """Add the failure's writes to ``pipe`` (the outbox relay sends them with its batch)."""
        failed_at = datetime.now(UTC)
        document = {
            "job_id": job_id,
            "job": job,
            "queue": queue,
            "payload": payload,
            "tries": tries,
            "error": error,
            "traceback": (traceback or "")[-MAX_TRACEBACK_CHARS:] or None,
            "failed_at": failed_at.isoformat(),
            "raw": raw,
        }
        pipe.set(keys.FAILED_PREFIX + job_id, wire.encode(document))
        pipe.zadd(keys.FAILED_INDEX, {job_id: failed_at.timestamp()})

    async def count(self) -> int:
        return await self.redis.zcard(keys.FAILED_INDEX)

    async def page(self, offset: int = 0, limit: int = 50) -> list[dict[str, Any]]:
        """Newest first."""
        ids = await self.redis.zrevrange(keys.FAILED_INDEX, offset, offset + limit - 1)
        if not ids:
            return []
        docs = await self.redis.mget([keys.FAILED_PREFIX + i.decode() for i in ids])
        return [wire.decode(d) for d in docs if d]

    async def get(self, job_id: str) -> dict[str, Any] | None:
        doc = await self.redis.get(keys.FAILED_PREFIX + job_id)
        return wire.decode(doc) if doc else None

    async def delete(self, job_id: str) -> bool:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.FAILED_PREFIX + job_id)
            pipe.zrem(keys.FAILED_INDEX, job_id)
            deleted, _ = await pipe.execute()
        return bool(deleted)

    async def retry(self, job_id: str) -> str:
        """Enqueue the failed job again (same id where it had a key) and drop its record."""
        failure = await self.get(job_id)
        if failure is None:
            raise LookupError(f"no failed job {job_id!r}")
        name = failure["job"]
        if name not in CATALOG:
            raise ValueError(f"failed job {job_id!r} names unknown job {name!r}: it cannot be retried")
        if not isinstance(failure["payload"], Mapping):
            raise ValueError(f"failed job {job_id!r} has no readable payload: it cannot be retried")
        key = job_id.removeprefix(f"{name}:") if job_id.startswith(f"{name}:") else None
        # The failed attempt's kept result would make the keyed enqueue a no-op.
        await self.redis.delete(keys.result_key_prefix + job_id)
        try:
            new_id = await Producer(self.redis).enqueue(name, failure["payload"], key=key)
        except InvalidPayload as e:
            raise ValueError(f"failed job {job_id!r} cannot be retried: {e}") from None
        await self.delete(job_id)
        return new_id

    async def _all_ids(self, batch: int = 500) -> list[str]:
        ids: list[str] = []
        start = 0
        while chunk := await self.redis.zrange(keys.FAILED_INDEX, start, start + batch - 1):
            ids += [i.decode() for i in chunk]
            start += batch
        return ids

    async def retry_all(self) -> tuple[list[str], list[str]]:
        """Returns (retried job ids, errors for those that could not be retried)."""
        retried, errors = [], []
        for job_id in await self._all_ids():
            try:
                retried.append(await self.retry(job_id))
            except (LookupError, ValueError) as e:
                errors.append(str(e))
        return retried, errors

    async def delete_all(self) -> int:
        ids = await self._all_ids()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(*[keys.FAILED_PREFIX + i for i in chunk])
                pipe.zrem(keys.FAILED_INDEX, *chunk)
                await pipe.execute()
        return len(ids)

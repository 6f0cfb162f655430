"""High-water marks in Redis: one hash, job name -> JSON object (see jobs.marks).

Redis being away costs only speed: a mark that cannot be read is no mark (the job does the full
work), one that cannot be written leaves the old one (the next run redoes a little).
"""

from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from jobfleet import keys, wire

log = structlog.get_logger("jobfleet.marks")


class RedisMarks:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def get(self, name: str) -> dict[str, Any] | None:
        try:
            value = await self.redis.hget(keys.MARKS, name)
        except (RedisError, OSError) as e:
            log.warning("mark_not_read", mark=name, error=str(e))
            return None
        return wire.decode(value) if value else None

    async def set(self, name: str, value: dict[str, Any]) -> None:
        try:
            await self.redis.hset(keys.MARKS, name, wire.encode(value))
        except (RedisError, OSError) as e:
            log.warning("mark_not_written", mark=name, error=str(e))

"""Redis clients for a ``RedisTarget``: one server, or the master Redis Sentinel names.

A client behind Sentinel asks it for the master's address whenever it opens a connection, and
redis-py drops a connection that meets a demoted master (``ConnectionError``), so the next command
reaches the promoted one. Part of the producer library: needs only redis.
"""

from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.asyncio.sentinel import Sentinel

from jobfleet.redis_target import RedisTarget

# A Sentinel that never answers must not hang a worker or a producer: ask the next one instead.
SENTINEL_TIMEOUT_S = 2.0
# Connections to a master found through Sentinel: a master lost in a failover (a host that went
# away, not a process that died) must surface as an error, not as a command that waits forever.
MASTER_CONNECT_TIMEOUT_S = 5.0
MASTER_SOCKET_TIMEOUT_S = 30.0

R = TypeVar("R", bound=Redis)


def connect(target: RedisTarget, redis_class: type[R] = Redis, **options: Any) -> R:  # type: ignore[assignment]
    if not target.uses_sentinel:
        return redis_class.from_url(target.url, **options)
    sentinel = Sentinel(
        list(target.sentinels),
        sentinel_kwargs={"socket_timeout": SENTINEL_TIMEOUT_S, "socket_connect_timeout": SENTINEL_TIMEOUT_S},
        socket_connect_timeout=MASTER_CONNECT_TIMEOUT_S,
        socket_timeout=MASTER_SOCKET_TIMEOUT_S,
        db=target.db,
        username=target.username,
        password=target.password,
    )
    return sentinel.master_for(target.master, redis_class=redis_class, **options)

"""The fleet's Redis clients, all built from ``settings.redis_target`` so that every part follows a
Sentinel failover the same way (see ``jobfleet.redis_target``)."""

from arq.connections import ArqRedis
from arq.constants import expires_extra_ms

from jobfleet import wire
from jobfleet.connect import connect
from jobfleet.producer import Producer
from jobfleet.redis_target import RedisTarget
from jobfleet.settings import Settings


def producer(settings: Settings) -> Producer:
    return Producer(
        connect(settings.redis_target),
        durable_replicas=settings.redis_durable_replicas,
        durable_timeout_s=settings.redis_durable_timeout_s,
    )


def arq_pool(target: RedisTarget, queue_name: str) -> ArqRedis:
    """What arq's ``create_pool`` builds, from our target: arq's own Sentinel pool sets no socket
    timeouts, so one Sentinel that never answers would hang the worker."""
    pool = connect(target, redis_class=ArqRedis)
    pool.job_serializer = wire.encode
    pool.job_deserializer = wire.decode_job
    pool.default_queue_name = queue_name
    pool.expires_extra_ms = expires_extra_ms
    return pool

"""``jobfleet demo``: fresh demo databases with realistic data, and a worker sweeping them.

It uses the configured servers but its own databases (PostgreSQL ``jobfleet_demo``, MariaDB/MySQL
databases prefixed ``jobfleet_demo_``, Redis database 9), recreated on every start, so it never
touches real data.
"""

import argparse
import asyncio

import asyncpg
from sqlalchemy import update
from sqlalchemy.engine import make_url

from db.engines import pickatale_engine, pinteach_engine, pinteach_url
from db.pickatale import DATABASES
from db.pinteach import scheduled_messages
from db.schema import create_pickatale, create_pinteach
from demo import credits, gdpr, learners, licenses, messages, payments, retention, sessions, waitlist
from jobfleet.connect import connect
from jobfleet.settings import Settings
from workers import connections
from workers.fleet import Fleet
from workers.logging import configure

DEMO_DATABASE = "jobfleet_demo"
DEMO_PREFIX = "jobfleet_demo_"
DEMO_REDIS_DB = 9


def demo_settings(settings: Settings) -> Settings:
    pinteach = pinteach_url(settings.pinteach_dsn).set(database=DEMO_DATABASE)
    redis = make_url(settings.redis_url.replace("rediss://", "redis://", 1))
    redis_url = (
        settings.redis_url.rsplit("/", 1)[0] if redis.database is not None else settings.redis_url.rstrip("/")
    )
    return settings.model_copy(
        update={
            "pinteach_dsn": pinteach.set(drivername="postgresql").render_as_string(hide_password=False),
            "pickatale_db_prefix": DEMO_PREFIX,
            "redis_url": f"{redis_url}/{DEMO_REDIS_DB}",
        }
    )


async def reset_databases(settings: Settings) -> None:
    url = pinteach_url(settings.pinteach_dsn)
    admin = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, password=url.password, database="postgres"
    )
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{DEMO_DATABASE}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{DEMO_DATABASE}"')
    finally:
        await admin.close()
    pg = pinteach_engine(settings.pinteach_dsn, pool_size=1)
    my = pickatale_engine(settings.pickatale_dsn, pool_size=1)
    try:
        await create_pinteach(pg)
        async with my.begin() as conn:
            for name in DATABASES:
                await conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{DEMO_PREFIX}{name}`")
        await create_pickatale(my, DEMO_PREFIX)
    finally:
        await pg.dispose()
        await my.dispose()
    redis = connect(settings.redis_target)
    await redis.flushdb()
    await redis.aclose()


async def load_data(settings: Settings) -> None:
    pg = pinteach_engine(settings.pinteach_dsn, pool_size=1)
    my = pickatale_engine(settings.pickatale_dsn, prefix=settings.pickatale_db_prefix, pool_size=1)
    try:
        async with pg.begin() as conn:
            for seed in (sessions, credits, waitlist, payments, gdpr):
                await seed.seed_demo(conn)
            demo_messages = await messages.seed_demo(conn)
        async with my.begin() as conn:
            await licenses.seed_demo(conn)
            await retention.seed_demo(conn)
            await learners.seed_demo(conn)
        # as the backend does: the message's own deferred job, its id stored on the message
        message_id, scheduled_for = demo_messages.deferred
        async with connections.producer(settings) as producer:
            job_id = await producer.enqueue(
                "messages.deliver", {"message_id": message_id}, key=str(message_id), defer_until=scheduled_for
            )
        async with pg.begin() as conn:
            await conn.execute(
                update(scheduled_messages).where(scheduled_messages.c.id == message_id).values(job_id=job_id)
            )
    finally:
        await pg.dispose()
        await my.dispose()


def main(args: argparse.Namespace, settings: Settings) -> int:
    settings = demo_settings(settings)
    if "log_format" not in settings.model_fields_set:
        settings = settings.model_copy(update={"log_format": "console"})
    configure(settings.log_level, settings.log_format)
    print(
        f"jobfleet demo: PostgreSQL database {DEMO_DATABASE}, Pickatale databases {DEMO_PREFIX}*, "
        f"Redis database {DEMO_REDIS_DB}; recreating them with demo data..."
    )

    async def run() -> int:
        await reset_databases(settings)
        await load_data(settings)
        print("jobfleet demo: data loaded; starting a worker with the schedules (Ctrl-C to stop).")
        print("jobfleet demo: overdue sweeps run at once, then every minute; watch the job_succeeded lines.")
        await Fleet(
            settings, ["jobfleet:queue:default", "jobfleet:queue:sweeps", "jobfleet:queue:calendar"]
        ).run()
        return 0

    return asyncio.run(run())

"""Throwaway databases for one test run: a PostgreSQL database and prefixed MariaDB databases made
from the project's DDL, and a Redis database index claimed for the run; all dropped at the end."""

import asyncio
import os
import secrets

import asyncpg
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from db.engines import pickatale_engine, pinteach_engine
from db.pickatale import DATABASES
from db.schema import create_pickatale, create_pinteach

PG_ADMIN_DSN = os.environ.get("JOBFLEET_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
MYSQL_DSN = os.environ.get("JOBFLEET_TEST_MYSQL", "mysql://root@127.0.0.1:3306/")
REDIS_BASE = os.environ.get("JOBFLEET_TEST_REDIS", "redis://127.0.0.1:6379")
RUN_ID = secrets.token_hex(4)


async def create_pg_database() -> str:
    name = f"jf_test_{RUN_ID}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + name
    engine = pinteach_engine(dsn, pool_size=1)
    try:
        await create_pinteach(engine)
    finally:
        await engine.dispose()
    return dsn


async def drop_pg_database(dsn: str) -> None:
    name = dsn.rsplit("/", 1)[1]
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def create_mysql_databases() -> str:
    prefix = f"jft{RUN_ID}_"
    engine = pickatale_engine(MYSQL_DSN, pool_size=1)
    try:
        await create_pickatale(engine, prefix)
    finally:
        await engine.dispose()
    return prefix


async def drop_mysql_databases(prefix: str) -> None:
    engine = pickatale_engine(MYSQL_DSN, pool_size=1)
    try:
        async with engine.begin() as conn:
            for name in DATABASES:
                await conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{prefix}{name}`")
    finally:
        await engine.dispose()


async def claim_redis_db() -> tuple[str, int]:
    """Claim one of Redis's numbered databases for this run, so parallel runs never share keys."""
    admin = Redis.from_url(f"{REDIS_BASE}/0")
    try:
        count = int((await admin.config_get("databases"))["databases"])
        for index in (i for i in range(1, count) if i != 9):  # 9 is the demo's
            if await admin.set(f"jobfleet:test-claim:{index}", RUN_ID, nx=True, ex=3 * 3600):
                url = f"{REDIS_BASE}/{index}"
                db = Redis.from_url(url)
                await db.flushdb()
                await db.aclose()
                return url, index
    finally:
        await admin.aclose()
    raise RuntimeError(f"all Redis databases 1-{count - 1} are claimed by other test runs")


async def release_redis_db(index: int) -> None:
    admin = Redis.from_url(f"{REDIS_BASE}/0")
    try:
        db = Redis.from_url(f"{REDIS_BASE}/{index}")
        await db.flushdb()
        await db.aclose()
        if (await admin.get(f"jobfleet:test-claim:{index}")) == RUN_ID.encode():
            await admin.delete(f"jobfleet:test-claim:{index}")
    finally:
        await admin.aclose()


async def truncate_pinteach(engine: AsyncEngine) -> None:
    from db.pinteach import metadata

    names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.exec_driver_sql(f"TRUNCATE {names} CASCADE")


async def truncate_pickatale(engine: AsyncEngine) -> None:
    from db.pickatale import metadata

    async with engine.begin() as conn:
        await conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 0")
        for table in metadata.sorted_tables:
            await conn.execute(table.delete())
        await conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 1")


def run(coro):
    return asyncio.run(coro)

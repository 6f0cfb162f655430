"""Fixtures: real PostgreSQL, MariaDB and Redis, in databases made for this run and dropped after."""

from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from jobfleet.settings import Settings, load_settings
from jobs.deps import Deps
from tests import services
from tests.factories import PinTeach


@pytest.fixture(scope="session")
def databases() -> Iterator[dict[str, str]]:
    pg_dsn = services.run(services.create_pg_database())
    prefix = services.run(services.create_mysql_databases())
    redis_url, redis_index = services.run(services.claim_redis_db())
    try:
        yield {
            "pinteach_dsn": pg_dsn,
            "pickatale_dsn": services.MYSQL_DSN,
            "pickatale_db_prefix": prefix,
            "redis_url": redis_url,
        }
    finally:
        services.run(services.drop_pg_database(pg_dsn))
        services.run(services.drop_mysql_databases(prefix))
        services.run(services.release_redis_db(redis_index))


@pytest.fixture(scope="session")
def settings(databases: dict[str, str]) -> Settings:
    # Short grace and budgets keep tests quick; each test sets what it relies on explicitly.
    return load_settings(**databases, log_level="WARNING")


@pytest.fixture(scope="session")
def env(databases: dict[str, str]) -> dict[str, str]:
    """The environment for a subprocess (a worker, the CLI) that must use this run's databases."""
    import os

    return {**os.environ, **{f"JOBFLEET_{k.upper()}": v for k, v in databases.items()}}


@pytest.fixture(scope="session")
async def deps(settings: Settings) -> AsyncIterator[Deps]:
    deps = Deps.from_settings(settings)
    yield deps
    await deps.close()


@pytest.fixture
async def pg(deps: Deps) -> AsyncEngine:
    """The PinTeach engine, with every table emptied before the test."""
    await services.truncate_pinteach(deps.pinteach)
    return deps.pinteach


@pytest.fixture
async def mysql(deps: Deps) -> AsyncEngine:
    """The Pickatale engine (prefixed databases), with every table emptied before the test."""
    await services.truncate_pickatale(deps.pickatale)
    return deps.pickatale


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
def seed(pg: AsyncEngine) -> PinTeach:
    """Factories for PinTeach rows, on emptied tables."""
    return PinTeach(pg)

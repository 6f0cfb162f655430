"""Async engines for the two shared databases, built from plain libpq / MySQL URLs."""

from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from db.pickatale import DATABASES


def pinteach_url(dsn: str) -> URL:
    return make_url(dsn).set(drivername="postgresql+asyncpg")


def pickatale_url(dsn: str) -> URL:
    return make_url(dsn).set(drivername="mysql+asyncmy")


def pinteach_engine(
    dsn: str, *, pool_size: int = 10, server_settings: dict[str, str] | None = None
) -> AsyncEngine:
    return create_async_engine(
        pinteach_url(dsn),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,  # a restarted server leaves dead connections in the pool
        connect_args={"server_settings": {"application_name": "jobfleet", **(server_settings or {})}},
    )


def libpq_dsn(dsn: str) -> str:
    """The DSN as asyncpg's own ``connect`` takes it (no SQLAlchemy driver suffix)."""
    return pinteach_url(dsn).set(drivername="postgresql").render_as_string(hide_password=False)


def pickatale_schema_map(prefix: str) -> dict[str | None, str | None]:
    return {name: prefix + name for name in DATABASES} if prefix else {}


def pickatale_engine(dsn: str, *, prefix: str = "", pool_size: int = 10) -> AsyncEngine:
    engine = create_async_engine(
        pickatale_url(dsn),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=3600,
        # DATETIME columns hold UTC: NOW() and the fleet's cut-offs must agree on it.
        connect_args={"init_command": "SET time_zone = '+00:00'"},
    )
    if prefix:
        return engine.execution_options(schema_translate_map=pickatale_schema_map(prefix))
    return engine

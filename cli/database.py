"""``jobfleet db init`` and ``jobfleet db check``."""

import sys

import asyncpg
from sqlalchemy.exc import DBAPIError, OperationalError

from cli.errors import one_line
from db.engines import pickatale_engine, pinteach_engine, pinteach_url
from db.schema import SchemaError, check_pickatale, check_pinteach, create_pickatale, create_pinteach
from jobfleet.settings import Settings


def _where(dsn: str) -> str:
    return pinteach_url(dsn).render_as_string(hide_password=True).split("://", 1)[1]


async def ensure_pinteach_database(dsn: str) -> bool:
    """Create the PinTeach database if the server lacks it (development and demo machines)."""
    url = pinteach_url(dsn)
    name = url.database
    admin = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, password=url.password, database="postgres"
    )
    try:
        if await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
        await admin.execute(f'CREATE DATABASE "{name}"')
        return True
    finally:
        await admin.close()


async def init(settings: Settings, targets: list[str]) -> int:
    status = 0
    if "pinteach" in targets:
        try:
            created = await ensure_pinteach_database(settings.pinteach_dsn)
            engine = pinteach_engine(settings.pinteach_dsn, pool_size=1)
            try:
                await create_pinteach(engine)
            finally:
                await engine.dispose()
            print(
                f"PinTeach schema created in {_where(settings.pinteach_dsn)}"
                + (" (new database)" if created else "")
            )
        except SchemaError as e:
            print(f"PinTeach: {e}", file=sys.stderr)
            status = 1
        except (OSError, asyncpg.PostgresError, DBAPIError) as e:
            print(f"PinTeach: {one_line(e)}", file=sys.stderr)
            status = 1
    if "pickatale" in targets:
        engine = pickatale_engine(settings.pickatale_dsn, pool_size=1)
        try:
            await create_pickatale(engine, settings.pickatale_db_prefix)
            print(f"Pickatale schema created ({settings.pickatale_db_prefix or ''}account_center, ...)")
        except SchemaError as e:
            print(f"Pickatale: {e}", file=sys.stderr)
            status = 1
        except (OSError, DBAPIError) as e:
            print(f"Pickatale: {one_line(e)}", file=sys.stderr)
            status = 1
        finally:
            await engine.dispose()
    return status


async def check(settings: Settings) -> int:
    problems: list[str] = []
    unreachable: list[str] = []
    off: list[str] = []
    pg = pinteach_engine(settings.pinteach_dsn, pool_size=1)
    my = pickatale_engine(settings.pickatale_dsn, prefix=settings.pickatale_db_prefix, pool_size=1)
    try:
        for label, probe in (
            ("PinTeach", check_pinteach(pg)),
            ("Pickatale", check_pickatale(my, settings.pickatale_db_prefix)),
        ):
            try:
                report = await probe
                problems += [f"{label}: {p}" for p in report.problems]
                off += [f"{label}: {line}" for line in report.off]
            except (OperationalError, OSError, DBAPIError) as e:
                unreachable.append(f"{label}: {one_line(e)}")
    finally:
        await pg.dispose()
        await my.dispose()
    for line in off + problems + unreachable:
        print(line)
    if problems or unreachable:
        summary = []
        if unreachable:
            summary.append(f"{len(unreachable)} database(s) not checked: cannot connect")
        if problems:
            summary.append(
                f"{len(problems)} problem(s): the fleet needs these tables, columns and enum values"
            )
        print("; ".join(summary), file=sys.stderr)
        return 1
    print(
        "all tables, columns and enum values the fleet uses are present"
        + (f" ({len(off)} optional part(s) off until their migration runs)" if off else "")
    )
    return 0

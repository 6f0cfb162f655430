"""The schema contract: create either database from the project's DDL, and check a live one."""

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Enum, MetaData, Table, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db import pickatale, pinteach

SCHEMA_DIR = Path(__file__).resolve().parent / "schema"
PINTEACH_DDL = SCHEMA_DIR / "pinteach.sql"
PICKATALE_DDL = SCHEMA_DIR / "pickatale.sql"


class SchemaError(RuntimeError):
    pass


@dataclass
class SchemaReport:
    """What a live database lacks: ``problems`` stop the fleet; ``off`` names the parts that wait
    for a migration the database has not run yet (the rest of the fleet works without them)."""

    problems: list[str] = field(default_factory=list)
    off: list[str] = field(default_factory=list)


def missing_table_line(table: Table) -> str:
    """The one line a job, ``db check`` and the logs give for an optional table that is missing."""
    return (
        f"table {table.fullname} is missing (migration {table.info['migration']} has not run): "
        f"{table.info['needed_by']} is off"
    )


async def missing_table(conn: AsyncConnection, table: Table) -> str | None:
    """None where ``table`` exists, else what is off and why (see ``missing_table_line``)."""
    if conn.dialect.name == "postgresql":
        found = (
            await conn.execute(text("SELECT to_regclass(:name) IS NOT NULL"), {"name": table.name})
        ).scalar()
    else:
        schema_map = conn.sync_connection.get_execution_options().get("schema_translate_map") or {}
        found = (
            await conn.execute(
                text(
                    "SELECT count(*) FROM information_schema.tables "
                    "WHERE table_schema = :schema AND table_name = :name"
                ),
                {"schema": schema_map.get(table.schema, table.schema), "name": table.name},
            )
        ).scalar()
    return None if found else missing_table_line(table)


def pickatale_statements(prefix: str = "") -> list[str]:
    """Pickatale's DDL split into statements, its database names prefixed."""
    sql = PICKATALE_DDL.read_text()
    sql = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    if prefix:
        names = "|".join(pickatale.DATABASES)
        sql = re.sub(rf"\b({names})\b(?=\.|;)", lambda m: prefix + m.group(1), sql)
    return [s.strip() for s in sql.split(";") if s.strip()]


async def create_pinteach(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        existing = (
            await conn.execute(
                text("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
            )
        ).scalar_one()
        if existing:
            raise SchemaError(f"the PinTeach database already has {existing} tables; init wants an empty one")
        raw = await conn.get_raw_connection()
        # asyncpg runs a multi-statement script in one round trip when given no arguments
        await raw.driver_connection.execute(PINTEACH_DDL.read_text())
        await conn.commit()


async def create_pickatale(engine: AsyncEngine, prefix: str = "") -> None:
    async with engine.connect() as conn:
        names = [prefix + name for name in pickatale.DATABASES]
        rows = (
            await conn.exec_driver_sql(
                "SELECT table_schema FROM information_schema.tables WHERE table_schema IN ("
                + ",".join(["%s"] * len(names))
                + ")",
                tuple(names),
            )
        ).all()
        if rows:
            raise SchemaError(
                f"the Pickatale databases already have {len(rows)} tables; init wants empty ones"
            )
        for statement in pickatale_statements(prefix):
            await conn.exec_driver_sql(statement)
        await conn.commit()


async def _pinteach_columns(engine: AsyncEngine) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    async with engine.connect() as conn:
        columns: dict[str, set[str]] = {}
        for table, column in await conn.execute(
            text(
                "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'"
            )
        ):
            columns.setdefault(table, set()).add(column)
        enums: dict[str, set[str]] = {}
        for name, label in await conn.execute(
            text("SELECT t.typname, e.enumlabel FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid")
        ):
            enums.setdefault(name, set()).add(label)
    return columns, enums


def _missing(metadata: MetaData, columns: dict[str, set[str]], key: Callable[[Table], str]) -> SchemaReport:
    report = SchemaReport()
    for table in metadata.tables.values():
        name = key(table)
        if name not in columns:
            if "migration" in table.info:
                report.off.append(missing_table_line(table))
            else:
                report.problems.append(f"table {table.fullname} is missing")
            continue
        report.problems += [
            f"column {table.fullname}.{c.name} is missing"
            for c in table.columns
            if c.name not in columns[name]
        ]
    return report


async def check_pinteach(engine: AsyncEngine) -> SchemaReport:
    columns, enums = await _pinteach_columns(engine)
    report = _missing(pinteach.metadata, columns, lambda t: t.name)
    wanted = dict(pinteach.ENUMS)
    if pinteach.review_requests.name in columns:  # the migration that brings them has run
        wanted.update(pinteach.OPTIONAL_ENUMS)
    for name, values in wanted.items():
        if name not in enums:
            report.problems.append(f"enum type {name} is missing")
            continue
        report.problems += [f"enum {name} has no value {v!r}" for v in values if v not in enums[name]]
    return report


async def check_pickatale(engine: AsyncEngine, prefix: str = "") -> SchemaReport:
    async with engine.connect() as conn:
        rows = (
            await conn.exec_driver_sql(
                "SELECT table_schema, table_name, column_name, column_type FROM information_schema.columns "
                "WHERE table_schema IN (" + ",".join(["%s"] * len(pickatale.DATABASES)) + ")",
                tuple(prefix + name for name in pickatale.DATABASES),
            )
        ).all()
    columns: dict[str, set[str]] = {}
    types: dict[tuple[str, str], str] = {}
    for schema, table, column, column_type in rows:
        logical = f"{schema.removeprefix(prefix)}.{table}"
        columns.setdefault(logical, set()).add(column)
        types[(logical, column)] = column_type
    report = _missing(pickatale.metadata, columns, lambda t: t.fullname)
    for table in pickatale.metadata.tables.values():
        for column in table.columns:
            declared = types.get((table.fullname, column.name))
            if declared and isinstance(column.type, Enum):
                live = set(re.findall(r"'((?:[^']|'')*)'", declared))
                report.problems += [
                    f"enum {table.fullname}.{column.name} has no value {v!r}"
                    for v in column.type.enums
                    if v not in live
                ]
    return report

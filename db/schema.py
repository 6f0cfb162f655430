"""The schema contract: create either database from the project's DDL, and check a live one."""

import re
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Enum, MetaData, Table, text
from sqlalchemy.ext.asyncio import AsyncEngine

from db import pickatale, pinteach

SCHEMA_DIR = Path(__file__).resolve().parent / "schema"
PINTEACH_DDL = SCHEMA_DIR / "pinteach.sql"
PICKATALE_DDL = SCHEMA_DIR / "pickatale.sql"


class SchemaError(RuntimeError):
    pass


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


def _missing(metadata: MetaData, columns: dict[str, set[str]], key: Callable[[Table], str]) -> list[str]:
    problems = []
    for table in metadata.tables.values():
        name = key(table)
        if name not in columns:
            problems.append(f"table {table.fullname} is missing")
            continue
        problems += [
            f"column {table.fullname}.{c.name} is missing"
            for c in table.columns
            if c.name not in columns[name]
        ]
    return problems


async def check_pinteach(engine: AsyncEngine) -> list[str]:
    columns, enums = await _pinteach_columns(engine)
    problems = _missing(pinteach.metadata, columns, lambda t: t.name)
    for name, values in pinteach.ENUMS.items():
        if name not in enums:
            problems.append(f"enum type {name} is missing")
            continue
        problems += [f"enum {name} has no value {v!r}" for v in values if v not in enums[name]]
    return problems


async def check_pickatale(engine: AsyncEngine, prefix: str = "") -> list[str]:
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
    problems = _missing(pickatale.metadata, columns, lambda t: t.fullname)
    for table in pickatale.metadata.tables.values():
        for column in table.columns:
            declared = types.get((table.fullname, column.name))
            if declared and isinstance(column.type, Enum):
                live = set(re.findall(r"'((?:[^']|'')*)'", declared))
                problems += [
                    f"enum {table.fullname}.{column.name} has no value {v!r}"
                    for v in column.type.enums
                    if v not in live
                ]
    return problems

"""The generic proof of an erasure: every text, varchar and JSON column of every table of a
database, read from information_schema, searched for a person's values."""

from dataclasses import dataclass

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncEngine

from db.pickatale import DATABASES

PG_TYPES = ("text", "character varying", "character", "json", "jsonb", "ARRAY")
MYSQL_TYPES = ("char", "varchar", "tinytext", "text", "mediumtext", "longtext", "json")


@dataclass(frozen=True, slots=True)
class Hit:
    table: str
    column: str
    value: str
    row: str  # the row's primary key, as text

    def __str__(self) -> str:
        return f"{self.table}.{self.column} (row {self.row}) holds {self.value!r}"


async def scan_pinteach(engine: AsyncEngine, values: list[str]) -> list[Hit]:
    hits: list[Hit] = []
    async with engine.connect() as conn:
        columns = (
            await conn.execute(
                text(
                    "SELECT c.table_name, c.column_name FROM information_schema.columns c "
                    "JOIN information_schema.tables t USING (table_schema, table_name) "
                    "WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' "
                    "AND (c.data_type = ANY(:types) AND (c.data_type <> 'ARRAY' OR c.udt_name IN ('_text', '_varchar')))"
                ),
                {"types": list(PG_TYPES)},
            )
        ).all()
        assert len(columns) > 50, "the scan found too few columns to be the PinTeach schema"
        for table, column in columns:
            for value in values:
                rows = await conn.execute(
                    text(f'SELECT ctid::text FROM "{table}" WHERE "{column}"::text ILIKE :pattern'),
                    {"pattern": f"%{value}%"},
                )
                hits += [Hit(table, column, value, row) for (row,) in rows]
    return hits


async def scan_pickatale(engine: AsyncEngine, prefix: str, values: list[str]) -> list[Hit]:
    hits: list[Hit] = []
    schemas = [prefix + name for name in DATABASES]
    async with engine.connect() as conn:
        columns = (
            await conn.execute(
                text(
                    "SELECT c.table_schema, c.table_name, c.column_name, "
                    "(SELECT k.column_name FROM information_schema.key_column_usage k "
                    " WHERE k.table_schema = c.table_schema AND k.table_name = c.table_name "
                    " AND k.constraint_name = 'PRIMARY' LIMIT 1) AS pk "
                    "FROM information_schema.columns c "
                    "WHERE c.table_schema IN :schemas AND c.data_type IN :types"
                ).bindparams(
                    bindparam("schemas", expanding=True),
                    bindparam("types", expanding=True),
                ),
                {"schemas": schemas, "types": list(MYSQL_TYPES)},
            )
        ).all()
        assert len(columns) > 30, "the scan found too few columns to be the Pickatale schema"
        for schema, table, column, pk in columns:
            for value in values:
                rows = await conn.execute(
                    text(
                        f"SELECT CAST(`{pk}` AS CHAR) FROM `{schema}`.`{table}` "
                        f"WHERE LOWER(CAST(`{column}` AS CHAR)) LIKE LOWER(:pattern)"
                    ),
                    {"pattern": f"%{value}%"},
                )
                name = f"{schema.removeprefix(prefix)}.{table}"
                hits += [Hit(name, column, value, row) for (row,) in rows]
    return hits

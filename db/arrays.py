"""A batch as array parameters: one bind per column whatever the batch size, so a statement's SQL
is the same for 1 row or 500 and SQLAlchemy compiles it once (a multi-row VALUES of 500 rows is a
new statement with thousands of binds every time)."""

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, Subquery, all_, any_, func, literal, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import TypeEngine


def array(values: Iterable[Any], type_: TypeEngine | type[TypeEngine]) -> ColumnElement[Any]:
    return literal(list(values), ARRAY(type_))


def is_any(column: ColumnElement[Any], values: Iterable[Any]) -> ColumnElement[bool]:
    """``column = ANY(:values)``."""
    return column == any_(array(values, column.type))


def is_none_of(column: ColumnElement[Any], values: Iterable[Any]) -> ColumnElement[bool]:
    """``column <> ALL(:values)``."""
    return column != all_(array(values, column.type))


def unnest(name: str, **columns: tuple[Iterable[Any], TypeEngine | type[TypeEngine]]) -> Subquery:
    """Parallel arrays as rows: ``SELECT unnest(:a) AS a, unnest(:b) AS b``."""
    return select(
        *(func.unnest(array(values, type_)).label(column) for column, (values, type_) in columns.items())
    ).subquery(name)

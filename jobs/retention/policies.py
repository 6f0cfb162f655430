"""Retention policies: read and check schedules/retention.toml, the data the purge applies."""

import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import Column, DateTime, Enum, Integer, Table

from db.pickatale import metadata

Scalar = str | int | bool


class PolicyError(ValueError):
    """The retention file is missing or one of its policies is malformed; the message says where."""


class RetentionPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    table: str = Field(description="database.table, as in db/pickatale.py")
    time_columns: tuple[str, ...] = Field(min_length=1)
    combine: Literal["any", "first_non_null"] = "any"
    max_age_days: float | None = Field(default=None, gt=0)
    max_age_hours: float | None = Field(default=None, gt=0)
    # the most rows a chunk takes; each chunk is sized so its transaction takes about chunk_target_ms
    chunk_size: int = Field(default=5000, ge=1, le=100_000)
    chunk_target_ms: float = Field(default=200, gt=0, le=10_000)
    pause_between_chunks_s: float = Field(default=0.1, ge=0, le=60)
    action: Literal["delete", "update"]
    where: dict[str, Scalar] = Field(default_factory=dict)
    set_to: dict[str, Scalar] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> "RetentionPolicy":
        if (self.max_age_days is None) == (self.max_age_hours is None):
            raise ValueError("give exactly one of max_age_days and max_age_hours")
        if self.table not in metadata.tables:
            raise ValueError(f"table {self.table!r} is not a Pickatale table ({', '.join(metadata.tables)})")
        table = metadata.tables[self.table]
        pk = list(table.primary_key.columns)
        if len(pk) != 1 or not isinstance(pk[0].type, Integer):
            raise ValueError(f"table {self.table!r} has no integer primary key to walk in chunks")
        for name in self.time_columns:
            if not isinstance(_column(table, name, "time_columns").type, DateTime):
                raise ValueError(f"time_columns: {name!r} is not a DATETIME column")
        for field, values in (("where", self.where), ("set_to", self.set_to)):
            for name, value in values.items():
                column = _column(table, name, field)
                if isinstance(column.type, Enum) and value not in column.type.enums:
                    raise ValueError(f"{field}: {value!r} is not a value of {name} ({column.type.enums})")
        if self.action == "update" and not self.set_to:
            raise ValueError("an update policy needs set_to (the columns it changes)")
        if self.action == "delete" and self.set_to:
            raise ValueError("a delete policy takes no set_to")
        return self

    @property
    def max_age(self) -> timedelta:
        return timedelta(days=self.max_age_days or 0, hours=self.max_age_hours or 0)

    @property
    def sa_table(self) -> Table:
        return metadata.tables[self.table]


def _column(table: Table, name: str, field: str) -> Column:
    if name not in table.columns:
        raise ValueError(f"{field}: {table.fullname} has no column {name!r}")
    return table.columns[name]


def load_policies(path: Path) -> dict[str, RetentionPolicy]:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise PolicyError(f"{path}: cannot read the retention policies: {e}") from None
    policies = {}
    for name, fields in data.items():
        if not isinstance(fields, dict):
            raise PolicyError(f'{path}: {name!r} must be a table of settings, like ["{name}"]')
        try:
            policies[name] = RetentionPolicy(name=name, **fields)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "policy"
            message = first["msg"].removeprefix("Value error, ")
            raise PolicyError(f"{path}: policy {name!r}: {where}: {message}") from None
    if not policies:
        raise PolicyError(f"{path}: defines no retention policy")
    return policies


TELEMETRY = "telemetry.events"


def telemetry_max_age(path: Path) -> timedelta:
    """How long telemetry events may be kept: the ``telemetry.events`` policy, for whoever checks it."""
    policies = load_policies(path)
    if TELEMETRY not in policies:
        raise PolicyError(f"{path}: no {TELEMETRY!r} policy")
    return policies[TELEMETRY].max_age

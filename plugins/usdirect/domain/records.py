"""One declaration per record kind, from which every other spelling of it is derived.

A ``Record`` lists its fields once (name, logical type, nullability, key, what fills it). The
Arrow schema, the ``CREATE TABLE`` statement (one text valid on DuckDB and Postgres) and the mapping
template's target fields (``usdirect.mapping.schema``) are computed from it, so they cannot drift
apart; ``tests/test_records.py`` checks them against tables created in real DuckDB and Postgres.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import pyarrow as pa


@dataclass(frozen=True)
class LogicalType:
    """A column type in its three spellings: the template's, Arrow's and SQL's."""

    name: str  # the mapping template's spelling (the template language has one integer type)
    arrow: pa.DataType
    sql: str  # valid on DuckDB and Postgres alike


STRING = LogicalType("string", pa.string(), "TEXT")
INT = LogicalType("int", pa.int64(), "BIGINT")
# Counts and line numbers stored as INTEGER; a template reads them as ``int`` and the load narrows them.
INT32 = LogicalType("int", pa.int32(), "INTEGER")
BOOL = LogicalType("bool", pa.bool_(), "BOOLEAN")
DATE = LogicalType("date", pa.date32(), "DATE")
TIMESTAMP = LogicalType("timestamp", pa.timestamp("us", tz="UTC"), "TIMESTAMPTZ")
FLOAT = LogicalType("float", pa.float64(), "DOUBLE PRECISION")


def decimal(precision: int, scale: int) -> LogicalType:
    return LogicalType(
        f"decimal({precision},{scale})", pa.decimal128(precision, scale), f"DECIMAL({precision},{scale})"
    )


MONEY = decimal(12, 2)
MEASURE = decimal(12, 3)


class Source(StrEnum):
    """What fills a field."""

    TEMPLATE = "template"  # the mapping template, from the supplier's or platform's data
    PIPELINE = "pipeline"  # the pipeline (a parent key, a check's finding, the run's bookkeeping)
    WAREHOUSE = "warehouse"  # the warehouse's own bookkeeping (first/last seen, platform delivery)


@dataclass(frozen=True)
class Field:
    """One field of a record.

    ``required``: a template must map it. ``nullable`` is the stored column's, which can be looser
    than ``required`` (tables keep what other paths and earlier releases wrote).
    """

    name: str
    type: LogicalType
    nullable: bool = True
    key: bool = False
    source: Source = Source.PIPELINE
    required: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        if self.required and self.source is not Source.TEMPLATE:
            raise ValueError(f"{self.name}: only a field a template fills can be required")
        if self.key and self.nullable:
            raise ValueError(f"{self.name}: a key field cannot be nullable")


def mapped(
    name: str,
    type: LogicalType,
    description: str = "",
    *,
    required: bool = False,
    nullable: bool = True,
    key: bool = False,
) -> Field:
    """A field a mapping template fills."""
    return Field(name, type, nullable, key, Source.TEMPLATE, required, description)


def delivery_fields(platform_id: str) -> tuple[Field, ...]:
    """The warehouse's bookkeeping of a record it keeps and delivers to the platform: when it was
    seen, by which run, and what became of its delivery (``platform_id`` names the platform's id)."""
    return (
        Field("first_seen_at", TIMESTAMP, nullable=False, source=Source.WAREHOUSE),
        Field("last_seen_at", TIMESTAMP, nullable=False, source=Source.WAREHOUSE),
        Field(
            "run_id",
            STRING,
            nullable=False,
            source=Source.WAREHOUSE,
            description="the run that last wrote it",
        ),
        Field(platform_id, INT, source=Source.WAREHOUSE, description="id on the platform once delivered"),
        Field("platform_status", STRING, source=Source.WAREHOUSE),
        Field("platform_error", STRING, source=Source.WAREHOUSE, description="why the last delivery failed"),
    )


@dataclass(frozen=True)
class Record:
    """A record kind: its fields in stored column order, and its warehouse table (None when the
    record is only sent, such as the US Direct order payload)."""

    kind: str
    table: str | None
    fields: tuple[Field, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def stored_as(self) -> str:
        """The warehouse table's name."""
        if self.table is None:
            raise ValueError(f"the {self.kind} record is not stored as a table")
        return self.table

    @property
    def key(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.key)

    @property
    def mapped(self) -> tuple[Field, ...]:
        """The fields a mapping template fills, in stored order."""
        return tuple(f for f in self.fields if f.source is Source.TEMPLATE)

    @property
    def batch(self) -> tuple[str, ...]:
        """The fields a pipeline's batch carries (all but the warehouse's bookkeeping)."""
        return tuple(f.name for f in self.fields if f.source is not Source.WAREHOUSE)

    def field(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)

    def select(self, names: Sequence[str]) -> tuple[Field, ...]:
        return tuple(self.field(n) for n in names)

    def arrow_schema(self, names: Sequence[str] | None = None) -> pa.Schema:
        """Arrow schema of the record (or of ``names``). Arrow fields stay nullable: a batch may
        hold nulls that a reject rule removes, and the stored table enforces ``NOT NULL``."""
        fields = self.fields if names is None else self.select(names)
        return pa.schema([(f.name, f.type.arrow) for f in fields])

    def columns_sql(self, names: Sequence[str] | None = None, *, constraints: bool = True) -> str:
        """``name TYPE [NOT NULL], ...`` of the record (or of ``names``); without ``constraints``
        for stage tables."""
        fields = self.fields if names is None else self.select(names)
        return ", ".join(
            f"{f.name} {f.type.sql}{' NOT NULL' if constraints and not f.nullable else ''}" for f in fields
        )

    def create_sql(self, qualified_table: str) -> str:
        """``CREATE TABLE IF NOT EXISTS`` for the record (with its primary key when it has one)."""
        key = f", PRIMARY KEY ({', '.join(self.key)})" if self.key else ""
        return f"CREATE TABLE IF NOT EXISTS {qualified_table} ({self.columns_sql()}{key})"

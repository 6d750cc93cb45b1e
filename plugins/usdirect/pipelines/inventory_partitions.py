"""Partitions of a large full feed: K slices by a hash of the SKU, loaded and published one by one.

Above ``partition_rows`` SKUs, ``map_feed`` splits the mapped feed into K = ceil(skus /
partition_rows) Parquet files and the load and publish tasks run once per file (``.expand()``), so
no task holds more than one slice of the catalog. The slice of a SKU is computed the same way by
DuckDB (the feed, a DuckDB warehouse) and Postgres (the warehouse and ledger rows), from the first
32 bits of its MD5: each task compares its slice of the feed with the same slice of the stored
rows, so a SKU missing from the feed is marked or archived by exactly one task. K is decided per
run from the feed's total; the guard runs on that total in ``map_feed``, before any task writes.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from usdirect.pipelines.inventory_engine import open_engine, sql_literal

PARTITION_KEY = "_usd_part"


@dataclass(frozen=True)
class Partition:
    """Slice ``index`` of ``count`` (0-based)."""

    index: int
    count: int

    def file_name(self) -> str:
        return f"mapped-part-{self.index:04d}-of-{self.count:04d}.parquet"

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def of(cls, mapped: dict[str, Any]) -> Partition | None:
        """The partition an XCom dict of ``map_feed`` stands for (None: the whole feed)."""
        raw = mapped.get("partition")
        return cls(int(raw["index"]), int(raw["count"])) if raw else None

    def sql(self, dialect: str, column: str = "sku") -> str:
        """Condition selecting this slice's rows, in the warehouse's dialect."""
        return f"({slice_sql(dialect, column, self.count)} = {int(self.index)})"


def slice_sql(dialect: str, column: str, count: int) -> str:
    """The slice number (0..count-1) of a SKU column; equal on DuckDB and Postgres."""
    head = f"substr(md5({column}), 1, 8)"
    # mod(), not %: the statement may also carry %s placeholders.
    if dialect == "postgres":
        return f"mod(('x' || {head})::bit(32)::bigint, {int(count)})"
    return f"mod(CAST(('0x' || {head}) AS BIGINT), {int(count)})"


def and_in(partition: Partition | None, dialect: str, column: str = "sku") -> str:
    """`` AND <condition>`` to restrict a query to the partition; empty for the whole feed."""
    return f" AND {partition.sql(dialect, column)}" if partition else ""


def partition_count(skus: int, partition_rows: int | None) -> int:
    """How many slices a feed of ``skus`` SKUs is loaded in (1: not partitioned)."""
    if not partition_rows or skus <= partition_rows:
        return 1
    return math.ceil(skus / partition_rows)


def write_partitions(source: str, count: int, out: dict[int, Path]) -> list[int]:
    """Write the mapped feed ``source`` (a DuckDB table expression) as ``count`` slices, slice i to
    ``out[i]``, in one pass that spills under the engine's memory cap. Returns rows per slice."""
    con = open_engine()
    scratch = Path(tempfile.mkdtemp(prefix="usdirect-parts-"))
    try:
        con.execute(
            f"COPY (SELECT *, {slice_sql('duckdb', 'sku', count)} AS {PARTITION_KEY} FROM {source}) "
            f"TO {sql_literal(str(scratch))} "
            f"(FORMAT parquet, COMPRESSION lz4, PARTITION_BY ({PARTITION_KEY}))"
        )
        schema = con.sql(f"SELECT * FROM {source} LIMIT 0").to_arrow_table().schema
        rows: list[int] = []
        for index in range(count):
            files = sorted((scratch / f"{PARTITION_KEY}={index}").glob("*.parquet"))
            target = out[index]
            if not files:  # no SKU hashed into this slice: an empty file keeps the task list fixed
                pq.write_table(schema.empty_table(), target)
            elif len(files) == 1:
                shutil.move(str(files[0]), target)
            else:
                pattern = sql_literal(str(scratch / f"{PARTITION_KEY}={index}" / "*.parquet"))
                con.execute(
                    f"COPY (SELECT * FROM read_parquet({pattern})) TO {sql_literal(str(target))} "
                    "(FORMAT parquet, COMPRESSION lz4)"
                )
            rows.append(pq.read_metadata(target).num_rows)
        return rows
    finally:
        con.close()
        shutil.rmtree(scratch, ignore_errors=True)

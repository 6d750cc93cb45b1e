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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from usdirect.engine.base import BATCH_ROWS, open_engine

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
    ``out[i]``, in one streamed pass; returns rows per slice.

    Record batches are split in Arrow and appended to one Parquet writer per slice, so memory holds
    one batch whatever the feed's size (DuckDB's own partitioned COPY buffers row groups per slice
    and thread, and ran out of its 400 MB cap on a 10,000,000-row feed)."""
    con = open_engine()
    writers: dict[int, pq.ParquetWriter] = {}
    rows = [0] * count
    try:
        query = f"SELECT *, {slice_sql('duckdb', 'sku', count)} AS {PARTITION_KEY} FROM {source}"
        reader = con.sql(query).to_arrow_reader(BATCH_ROWS)
        schema = reader.schema.remove(reader.schema.get_field_index(PARTITION_KEY))
        writers = {i: pq.ParquetWriter(out[i], schema, compression="lz4") for i in range(count)}
        for batch in reader:
            table = pa.Table.from_batches([batch])
            key = table.column(PARTITION_KEY)
            table = table.drop_columns([PARTITION_KEY])
            for index in range(count):
                part = table.filter(pc.equal(key, index))
                if part.num_rows:
                    writers[index].write_table(part)
                    rows[index] += part.num_rows
        return rows
    finally:
        for writer in writers.values():
            writer.close()
        con.close()

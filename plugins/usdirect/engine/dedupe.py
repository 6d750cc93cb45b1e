"""Duplicate SKUs and row hashes: the last step of the transform, in DuckDB over the mapped Parquet.

Rule for a SKU listed more than once in one feed (a broken export): the row with the newest
``source_updated_at`` wins; among equally new rows, the one that comes last in the file wins
(later lines of an export are the later writes). Every losing row is counted and kept as a reject
with the row that won in ``kept_row_number``; the reason text is the same for every duplicate, so
reasons group in ``SELECT reason, count(*) FROM usdirect_rejects``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from usdirect.domain.inventory import MAPPED_COLUMNS, row_hash_sql
from usdirect.domain.rejects import KEPT_ROW, STORED_REJECT_SCHEMA
from usdirect.engine.base import open_engine, parquet_source, sql_literal

ROW = "_row"  # source row number carried next to the mapped columns until this step
DUPLICATE_REASON = (
    "duplicate sku: another row of the same SKU was kept (newest updated_at, then last in file)"
)
_ROW_GROUP = 122_880
_WRITES_AHEAD = 2  # row groups (about 20 MB each) queued for the writer thread
# Arrow's Parquet writer takes about 0.25 s less CPU per million rows than DuckDB's COPY, which
# tries dictionaries and writes statistics and bloom filters for every column. The loads read the
# file whole, so statistics buy nothing; dictionaries go only where values repeat (unique text such
# as sku, title or image_url would only be tried and dropped). Same contents, about 77 MB instead
# of 72 MB per million rows.
_DICTIONARY_COLUMNS = [
    "brand",
    "status",
    "category",
    "quantity",
    "cost",
    "msrp",
    "map",
    "weight_lb",
    "length_in",
    "width_in",
    "height_in",
]


@dataclass(frozen=True)
class Hashed:
    """Mapped batches that already carry ``row_hash`` (the feed transform hashes each chunk as it
    maps it): written as they come, without another pass through DuckDB."""

    schema: pa.Schema
    batches: Iterable[pa.RecordBatch]


@dataclass(frozen=True)
class Deduped:
    skus: int
    duplicates: pa.Table  # rejects (STORED_REJECT_SCHEMA, with kept_row_number) for the losing rows


def dedupe_and_hash(
    parts: pa.RecordBatchReader | Path | Hashed,
    out: Path,
    operation: str = "inventory",
    metadata: dict[str, str] | None = None,
) -> Deduped:
    """Write ``out`` = one row per SKU with ``row_hash`` (and ``_row``, the source row number).

    ``parts`` is streamed (an Arrow reader of mapped batches, a Parquet file, or ``Hashed`` batches
    that carry their row hash already): the common case, a feed without duplicates, costs one
    pass; only a feed with duplicates is rewritten once more.
    ``metadata`` is kept in the file's Parquet key-value metadata.
    """
    con = open_engine()
    try:
        if isinstance(parts, Hashed):
            write_batches(parts.schema, parts.batches, out, metadata)
        else:
            if isinstance(parts, Path):
                con.execute(f"CREATE TEMP VIEW parts AS SELECT * FROM {parquet_source(parts)}")
            else:
                con.register("parts", parts)
            write_hashed(con.sql(f"SELECT *, {row_hash_sql()} AS row_hash FROM parts"), out, metadata)
        rows, skus = con.execute(
            f"SELECT count(*), count(DISTINCT sku) FROM {parquet_source(out)}"
        ).fetchall()[0]
        if rows == skus:
            return Deduped(skus=int(skus), duplicates=STORED_REJECT_SCHEMA.empty_table())
        con.execute(f"CREATE TEMP VIEW hashed AS SELECT * FROM {parquet_source(out)}")
        con.execute(
            f"""CREATE TEMP TABLE ranked AS SELECT *,
    row_number() OVER (PARTITION BY sku ORDER BY source_updated_at DESC NULLS LAST, {ROW} DESC) AS _rank
FROM hashed WHERE sku IN (SELECT sku FROM hashed GROUP BY sku HAVING count(*) > 1)"""
        )
        kept = out.with_name(out.stem + ".deduped.parquet")
        con.execute(
            "COPY (SELECT * FROM hashed ANTI JOIN ranked USING (sku) "
            f"UNION ALL BY NAME SELECT * EXCLUDE (_rank) FROM ranked WHERE _rank = 1) "
            f"TO {sql_literal(str(kept))} {_parquet_options(metadata)}"
        )
        kept.replace(out)
        return Deduped(skus=int(skus), duplicates=_duplicate_rejects(con, operation))
    finally:
        con.close()


def _parquet_options(metadata: dict[str, str] | None) -> str:
    """Options of a DuckDB Parquet COPY, keeping ``metadata`` as key-value metadata."""
    options = f"FORMAT parquet, COMPRESSION lz4_raw, ROW_GROUP_SIZE {_ROW_GROUP}"
    if metadata:
        pairs = ", ".join(f"{sql_literal(k)}: {sql_literal(v)}" for k, v in metadata.items())
        options += f", KV_METADATA {{{pairs}}}"
    return f"({options})"


def write_hashed(rel: Any, out: Path, metadata: dict[str, str] | None = None) -> None:
    """Stream a DuckDB relation into ``out`` with Arrow's Parquet writer."""
    reader = rel.to_arrow_reader(_ROW_GROUP)
    write_batches(reader.schema, reader, out, metadata)


def write_batches(
    schema: pa.Schema, batches: Iterable[pa.RecordBatch], out: Path, metadata: dict[str, str] | None = None
) -> None:
    """Write record batches into ``out``, gathered into row groups of about ``_ROW_GROUP`` rows
    whatever the batches' size (each write of Arrow's writer closes a row group).

    Row groups are encoded and written on a thread of their own (Arrow's writer releases the GIL),
    so the next ones are made meanwhile: a million mapped rows take about 0.6 s to write, which the
    transform no longer waits for. At most ``_WRITES_AHEAD`` row groups wait for the writer.
    """
    schema = schema.with_metadata(metadata) if metadata else schema
    pending: list[pa.RecordBatch] = []
    size = 0
    queued: deque[Future[None]] = deque()
    with (
        pq.ParquetWriter(
            out, schema, compression="lz4", use_dictionary=_DICTIONARY_COLUMNS, write_statistics=False
        ) as writer,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="usdirect-parquet") as pool,
    ):

        def write(group: list[pa.RecordBatch], rows: int) -> None:
            queued.append(pool.submit(writer.write_table, pa.Table.from_batches(group, schema), rows))
            while len(queued) > _WRITES_AHEAD:
                queued.popleft().result()

        for batch in batches:
            pending.append(batch)
            size += batch.num_rows
            if size >= _ROW_GROUP:
                write(pending, size)
                pending, size = [], 0
        if pending:
            write(pending, size)
        while queued:
            queued.popleft().result()


def _duplicate_rejects(con: Any, operation: str) -> pa.Table:
    raw = ", ".join(f"{c} := l.{c}" for c in MAPPED_COLUMNS)
    table = con.sql(
        f"""SELECT {sql_literal(operation)} AS operation, l.{ROW} AS row_number, l.sku AS key,
    {sql_literal(DUPLICATE_REASON)} AS reason,
    CAST(to_json(struct_pack({raw})) AS VARCHAR) AS raw, w.{ROW} AS {KEPT_ROW}
FROM (SELECT * FROM ranked WHERE _rank > 1) l JOIN (SELECT sku, {ROW} FROM ranked WHERE _rank = 1) w
    ON w.sku = l.sku
ORDER BY l.{ROW}"""
    ).to_arrow_table()
    return table.cast(STORED_REJECT_SCHEMA)

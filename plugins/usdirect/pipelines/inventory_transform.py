"""Transform: feed CSV (or /v1/inventory pages) → mapped Parquet, one row per SKU, plus rejects.

The feed is read in Arrow record batches and mapped batch by batch with the inventory template, so
memory stays flat whatever the catalog size; mapped batches are appended to one Parquet file, then
DuckDB resolves duplicate SKUs and adds the row hash (``inventory_dedupe``).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from usdirect.mapping import Template
from usdirect.mapping.feed_reader import read_feed_batches
from usdirect.pipelines.inventory_dedupe import ROW, Deduped, dedupe_and_hash
from usdirect.pipelines.inventory_schema import MAPPED_SCHEMA, conform
from usdirect.targets.audit import REJECT_SCHEMA

PARTS_SCHEMA = MAPPED_SCHEMA.append(pa.field(ROW, pa.int64()))
RECORDS_PER_BATCH = 5_000
# Arrow's CSV reader reads several blocks ahead: 2 MB blocks keep that buffer near 20 MB where the
# 16 MB default holds about 250 MB (measured on a 1,000,000-row feed), at no cost in speed.
FEED_BLOCK_SIZE = 2 << 20
# The feed writes quantities above 100 as "100+" (read: 100); /v1/inventory reports exact counts.
# Changes are capped the same way, so that both sources agree and a full feed does not "change"
# every well-stocked SKU that the changes DAG touched back to 100 (with history rows each time).
QUANTITY_CAP = 100


@dataclass(frozen=True)
class TransformResult:
    """Counts of one transform; ``skus`` is the number of distinct SKUs written to the mapped file."""

    read: int
    rejected: int
    duplicates: int
    skus: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def transform_feed(feed: Path, template: Template, mapped: Path, rejects: Path) -> TransformResult:
    """Map the feed CSV at ``feed``; writes ``mapped`` (Parquet) and ``rejects`` (Parquet)."""
    reader = read_feed_batches(feed, template, block_size=FEED_BLOCK_SIZE)
    bad: list[pa.Table] = []

    def batches() -> Iterator[pa.RecordBatch]:
        for fb in reader:
            result = template.map_batch(fb.batch, row_numbers=fb.row_numbers)
            if result.rejects.num_rows:
                bad.append(result.rejects)
            yield from _with_rows(result.mapped).to_batches()

    deduped = dedupe_and_hash(pa.RecordBatchReader.from_batches(PARTS_SCHEMA, batches()), mapped)
    bad.append(reader.rejects)
    read = reader.rows_read + reader.malformed_rows
    return _finish(deduped, rejects, bad, read)


def transform_changes(
    records: Iterable[list[dict]], template: Template, mapped: Path, rejects: Path, until: dt.datetime | None
) -> TransformResult:
    """Map /v1/inventory pages; rows updated at or after ``until`` belong to a later window.

    Quantities are capped at ``QUANTITY_CAP`` like the feed's "100+".
    """
    bad: list[pa.Table] = []
    read = 0

    def batches() -> Iterator[pa.RecordBatch]:
        nonlocal read
        for page in records:
            result = template.map_records(page, row_offset=read)
            read += len(page)
            table = _with_rows(result.mapped)
            capped = pc.min_element_wise(table["quantity"], pa.scalar(QUANTITY_CAP, pa.int64()))
            table = table.set_column(table.schema.get_field_index("quantity"), "quantity", capped)
            if until is not None:
                stamp = pa.scalar(until, table.schema.field("source_updated_at").type)
                table = table.filter(pc.less(table["source_updated_at"], stamp))
            if result.rejects.num_rows:
                bad.append(result.rejects)
            yield from table.to_batches()

    deduped = dedupe_and_hash(pa.RecordBatchReader.from_batches(PARTS_SCHEMA, batches()), mapped)
    return _finish(deduped, rejects, bad, read)


def _with_rows(mapped: pa.Table) -> pa.Table:
    return conform(mapped).append_column(ROW, mapped.column("row_number").cast(pa.int64()))


def _finish(deduped: Deduped, rejects: Path, bad: list[pa.Table], read: int) -> TransformResult:
    parts_of_rejects = [t.select(REJECT_SCHEMA.names).cast(REJECT_SCHEMA) for t in [*bad, deduped.duplicates]]
    table = pa.concat_tables(parts_of_rejects)
    pq.write_table(table, rejects, compression="zstd")
    return TransformResult(
        read=read, rejected=table.num_rows, duplicates=deduped.duplicates.num_rows, skus=deduped.skus
    )


def write_pages(pages: Iterable[list[dict]], path: Path) -> int:
    """Stage /v1/inventory pages as JSON lines (one item per line); returns the item count."""
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for page in pages:
            for item in page:
                out.write(json.dumps(item, ensure_ascii=False) + "\n")
                count += 1
    return count


def read_pages(path: Path, size: int = RECORDS_PER_BATCH) -> Iterable[list[dict]]:
    """Staged JSON lines back as lists of ``size`` items."""
    page: list[dict] = []
    with path.open(encoding="utf-8") as src:
        for line in src:
            page.append(json.loads(line))
            if len(page) == size:
                yield page
                page = []
    if page:
        yield page

"""Transform: feed CSV (or /v1/inventory pages) → mapped Parquet, one row per SKU, plus rejects.

The feed is read in Arrow record batches and mapped batch by batch with the inventory template, so
memory stays flat whatever the catalog size; mapped batches are appended to one Parquet file, then
DuckDB resolves duplicate SKUs and adds the row hash (``inventory_dedupe``). Raw rows that the last
complete mapped feed already holds are taken from it instead of mapped again (``inventory_reuse``).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Generator, Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from usdirect.domain.inventory import MAPPED_SCHEMA, conform, row_hash_sql
from usdirect.domain.progress import Progress
from usdirect.domain.read_ahead import read_ahead
from usdirect.domain.rejects import STORED_REJECT_SCHEMA, conform_rejects
from usdirect.engine.dedupe import ROW, Deduped, Hashed, dedupe_and_hash, write_batches
from usdirect.engine.reuse import (
    DROPPED_SCHEMA,
    MAX_FRESH_SHARE,
    RAW_HASH,
    Base,
    MappedFeed,
    Matcher,
    complete_metadata,
    raw_fingerprint,
    raw_hash_sql,
)
from usdirect.mapping import Template
from usdirect.mapping.feed_reader import FeedBatch, read_feed_batches

PARTS_SCHEMA = MAPPED_SCHEMA.append(pa.field(ROW, pa.int64()))
FEED_PARTS_SCHEMA = PARTS_SCHEMA.append(pa.field(RAW_HASH, pa.int64()))
HASHED_PARTS_SCHEMA = FEED_PARTS_SCHEMA.append(pa.field("row_hash", pa.int64()))
# Rows per raw-hash call (and per mapping call): 32,768 hash a million rows in about 0.18 s where one
# call per 9,000-row feed block takes 0.47 s; 131,072 would save little more and hold about 170 MB
# more at the transform's peak (594 MB against 768 MB for a million rows).
CHUNK_ROWS = 32_768
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
    """Counts of one transform; ``skus`` is the number of distinct SKUs of the mapped feed and
    ``reused`` the rows taken from a base file instead of mapped again (``base_id``: that file)."""

    read: int
    rejected: int
    duplicates: int
    skus: int
    reused: int = 0
    base_id: str | None = None

    def as_dict(self) -> dict[str, int]:
        return {k: v for k, v in asdict(self).items() if k != "base_id"}


def transform_feed(
    feed: Path,
    template: Template,
    mapped: Path,
    rejects: Path,
    dropped: Path | None = None,
    base: Path | None = None,
) -> TransformResult:
    """Map the feed CSV at ``feed``; writes ``mapped`` (Parquet) and ``rejects`` (Parquet).

    ``base``: the complete mapped file of an earlier feed. If it was mapped under the same
    fingerprint, its rows are not mapped again: ``mapped`` gets the other rows and ``dropped``
    the base rows this feed no longer lists (see ``inventory_reuse``). Otherwise, when more than
    ``MAX_FRESH_SHARE`` changed, or when the feed lists a SKU twice, ``mapped`` is a complete file.
    """
    columns = list(template.source_columns)
    fingerprint = raw_fingerprint(template, columns)
    usable = Base.usable(base, fingerprint) if dropped is not None else None
    if usable is None or dropped is None:
        if dropped is not None:
            pq.write_table(DROPPED_SCHEMA.empty_table(), dropped)  # nothing builds on a base
        return _transform(feed, template, mapped, rejects, columns, None, complete_metadata(fingerprint))
    matcher = usable.matcher()
    result = _transform(feed, template, mapped, rejects, columns, matcher, None)
    pq.write_table(matcher.dropped(), dropped, compression="lz4")
    whole = MappedFeed(mapped, usable.path, dropped, usable.file_id)
    rows = whole.rows()
    if not matcher.repeated and rows - matcher.reused <= MAX_FRESH_SHARE * rows and not whole.repeated_skus():
        return replace(result, skus=rows, reused=matcher.reused, base_id=usable.file_id)
    # Duplicate SKUs need the full dedupe, and a feed this changed is a better base: map it whole.
    return transform_feed(feed, template, mapped, rejects, dropped=dropped)


def _transform(
    feed: Path,
    template: Template,
    mapped: Path,
    rejects: Path,
    columns: list[str],
    matcher: Matcher | None,
    complete: dict[str, str] | None,
) -> TransformResult:
    """One pass over the feed: raw hashes, then the template for every row (``matcher`` None: a
    complete, deduplicated file with ``complete`` as metadata) or for the rows the base lacks."""
    reader = read_feed_batches(feed, template, block_size=FEED_BLOCK_SIZE)
    bad: list[pa.Table] = []
    # Raw and row hashes are computed chunk by chunk on a connection that keeps row order (the
    # hashes must line up with the rows they hash). Hashing only the mapped chunk and appending the
    # column costs a third less than a second DuckDB pass that also copies every column back out.
    # Stages run on threads of their own, a chunk apart: parsing (the reader), raw hashes, mapping,
    # row hashes (here), writing. DuckDB and most of Arrow release the GIL, so on two cores a
    # million-row feed maps in about 0.4 s less than with both hashes beside the mapping, and a
    # re-sync, whose raw hashes are most of its work, in about 0.2 s less.
    hasher = duckdb.connect(":memory:")
    raw_hasher = hasher.cursor()  # a connection of its own: the raw hashes run on another thread
    raw_sql = f"SELECT {raw_hash_sql(columns)} FROM _usd_chunk"
    row_sql = f"SELECT {row_hash_sql()} FROM _usd_chunk"

    def hashed(table: pa.Table, sql: str, con: Any = hasher) -> pa.Array:
        con.register("_usd_chunk", table)
        try:
            return con.sql(sql).to_arrow_table().column(0).combine_chunks()
        finally:
            con.unregister("_usd_chunk")

    progress = Progress("mapping", None, unit="feed rows")

    def raw_hashed() -> Iterator[tuple[pa.Table, pa.Array, pa.Array]]:
        for table, rows in _chunks(reader):
            yield table, rows, hashed(table.select(columns), raw_sql, raw_hasher)

    def mapped_chunks() -> Iterator[pa.Table]:
        for table, rows, hashes in read_ahead(raw_hashed(), depth=1):
            progress.advance(table.num_rows)
            if matcher is not None:
                fresh = pc.invert(matcher.known(hashes))
                table, rows, hashes = table.filter(fresh), rows.filter(fresh), hashes.filter(fresh)
            result = template.map_batch(table, row_numbers=rows)
            if result.rejects.num_rows:
                bad.append(result.rejects)
                out = _with_rows(result.mapped)
                hashes = hashes.take(pc.index_in(out.column(ROW), value_set=rows))
            else:
                out = _with_rows(result.mapped)  # every row, in the order they were hashed
            yield out.append_column(RAW_HASH, hashes)

    def batches() -> Generator[pa.RecordBatch, None, None]:
        for out in read_ahead(mapped_chunks(), depth=1):
            yield from out.append_column("row_hash", hashed(out, row_sql)).to_batches()

    stream = batches()
    try:
        parts = Hashed(HASHED_PARTS_SCHEMA, stream)
        if matcher is None:
            deduped = dedupe_and_hash(parts, mapped, metadata=complete)
        else:
            write_batches(parts.schema, parts.batches, mapped)
            # Duplicates are counted over the whole feed, base included.
            deduped = Deduped(skus=0, duplicates=STORED_REJECT_SCHEMA.empty_table())
    finally:
        stream.close()  # after a failure: stops the stages' threads before their connections close
        raw_hasher.close()
        hasher.close()
    progress.finish()
    return _finish(deduped, rejects, [*bad, reader.rejects], reader.rows_read + reader.malformed_rows)


def _chunks(reader: Iterable[FeedBatch]) -> Iterator[tuple[pa.Table, pa.Array]]:
    """Feed batches joined into tables of about ``CHUNK_ROWS`` rows, with their row numbers (int64):
    DuckDB hashes one large table much faster than many small ones."""
    pending: list[FeedBatch] = []
    size = 0
    for fb in reader:
        pending.append(fb)
        size += fb.batch.num_rows
        if size >= CHUNK_ROWS:
            yield _joined(pending)
            pending, size = [], 0
    if pending:
        yield _joined(pending)


def _joined(batches: list[FeedBatch]) -> tuple[pa.Table, pa.Array]:
    table = pa.Table.from_batches([fb.batch for fb in batches])
    rows = pa.concat_arrays([fb.row_numbers.cast(pa.int64()) for fb in batches])
    return table, rows


def transform_changes(
    records: Iterable[list[dict[str, Any]]],
    template: Template,
    mapped: Path,
    rejects: Path,
    until: dt.datetime | None,
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

    failures: list[Exception] = []
    try:
        deduped = dedupe_and_hash(
            pa.RecordBatchReader.from_batches(PARTS_SCHEMA, _noting(batches(), failures)), mapped
        )
    except duckdb.Error:
        _raise_noted(failures)
        raise
    return _finish(deduped, rejects, bad, read)


def _noting(batches: Iterator[pa.RecordBatch], failures: list[Exception]) -> Iterator[pa.RecordBatch]:
    """Batches for DuckDB to read, noting an error raised while they are made."""
    try:
        yield from batches
    except Exception as exc:
        failures.append(exc)
        raise


def _raise_noted(failures: list[Exception]) -> None:
    """DuckDB wraps an error of the stream it reads in its own, traceback text and all; raise the
    original instead (a FeedFormatError must stay permanent and keep its message)."""
    if failures:
        raise failures[0] from failures[0].__cause__


def _with_rows(mapped: pa.Table) -> pa.Table:
    return conform(mapped).append_column(ROW, mapped.column("row_number").cast(pa.int64()))


def _finish(deduped: Deduped, rejects: Path, bad: list[pa.Table], read: int) -> TransformResult:
    table = pa.concat_tables([conform_rejects(t) for t in [*bad, deduped.duplicates]])
    pq.write_table(table, rejects, compression="zstd")
    return TransformResult(
        read=read,
        rejected=table.num_rows,
        duplicates=deduped.duplicates.num_rows,
        skus=deduped.skus,
    )


def write_pages(pages: Iterable[list[dict[str, Any]]], path: Path) -> int:
    """Stage /v1/inventory pages as JSON lines (one item per line); returns the item count."""
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for page in pages:
            for item in page:
                out.write(json.dumps(item, ensure_ascii=False) + "\n")
                count += 1
    return count


def read_pages(path: Path, size: int = RECORDS_PER_BATCH) -> Iterable[list[dict[str, Any]]]:
    """Staged JSON lines back as lists of ``size`` items."""
    page: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as src:
        for line in src:
            page.append(json.loads(line))
            if len(page) == size:
                yield page
                page = []
    if page:
        yield page

"""The transform hashes each chunk beside its mapping: every row must carry its own hashes.

``row_hash`` (what the loads compare) and ``_raw_hash`` (what the reuse matches) are computed per
chunk of the feed and appended to the mapped rows; a chunk with rejects maps fewer rows than it
read, so the raw hashes must be lined up by row number, not by position.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sandbox.catalog import Catalog, write_catalog_csv
from tests.support.inventory import mapped_file, row
from tests.support.paths import REPO
from usdirect.domain.inventory import row_hash_sql
from usdirect.engine import dedupe as inventory_dedupe
from usdirect.engine import transform as inventory_transform
from usdirect.engine.dedupe import ROW, Hashed, dedupe_and_hash, write_batches
from usdirect.engine.reuse import RAW_HASH, raw_hash_sql
from usdirect.mapping import load_template
from usdirect.mapping.feed_reader import read_feed_batches

TEMPLATE = REPO / "include" / "mappings" / "inventory.yaml"


def test_every_mapped_row_carries_the_hashes_of_its_own_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inventory_transform, "CHUNK_ROWS", 256)  # many chunks, several with rejects
    feed = tmp_path / "feed.csv"
    write_catalog_csv(Catalog(3000, 11), feed, dirty=True)
    template = load_template(TEMPLATE)
    out = tmp_path / "mapped.parquet"
    result = inventory_transform.transform_feed(feed, template, out, tmp_path / "rejects.parquet")
    assert result.rejected > 0, "the dirty feed must reject rows, or the alignment goes untested"

    raw = pa.concat_tables(
        pa.Table.from_batches([fb.batch]).append_column(ROW, fb.row_numbers.cast(pa.int64()))
        for fb in read_feed_batches(feed, template)
    )
    columns = list(template.source_columns)
    con = duckdb.connect()
    con.register("raw_rows", raw)
    wrong_row_hash, wrong_raw_hash, rows = con.execute(
        f"""SELECT count(*) FILTER (WHERE m.row_hash <> {row_hash_sql("m")}),
               count(*) FILTER (WHERE m.{RAW_HASH} IS DISTINCT FROM r.h), count(*)
        FROM read_parquet('{out}') m
        LEFT JOIN (SELECT {ROW}, {raw_hash_sql(columns)} AS h FROM raw_rows) r ON r.{ROW} = m.{ROW}"""
    ).fetchall()[0]
    assert rows == result.skus > 2000
    assert (wrong_row_hash, wrong_raw_hash) == (0, 0)


def test_hashed_batches_are_written_as_given_and_still_deduplicated(tmp_path: Path) -> None:
    rows = [row("1"), row("2", quantity=1), row("2", quantity=9)]
    reference = pq.read_table(mapped_file(tmp_path, rows)).sort_by("sku")
    # Row hashes the caller computed are kept as they are (no second pass recomputes them).
    marked = reference.set_column(
        reference.schema.get_field_index("row_hash"), "row_hash", pa.array([101, 102], pa.int64())
    )
    parts = pa.concat_tables([marked, marked.slice(1)])  # USD-2 twice: the later row number wins
    parts = parts.set_column(parts.schema.get_field_index(ROW), ROW, pa.array([1, 2, 3], pa.int64()))
    out = tmp_path / "hashed.parquet"
    deduped = dedupe_and_hash(Hashed(parts.schema, parts.to_batches(max_chunksize=1)), out)
    kept = {r["sku"]: (r["row_hash"], r[ROW]) for r in pq.read_table(out).to_pylist()}
    assert kept == {"USD-1": (101, 1), "USD-2": (102, 3)}
    assert deduped.skus == 2 and deduped.duplicates.num_rows == 1


def test_small_batches_are_gathered_into_full_row_groups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inventory_dedupe, "_ROW_GROUP", 1000)
    table = pa.table({"n": pa.array(range(4500), pa.int64())})
    out = tmp_path / "groups.parquet"
    write_batches(table.schema, table.to_batches(max_chunksize=300), out, {"usdirect.k": "v"})
    meta = pq.ParquetFile(out).metadata
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert sizes == [1200, 1200, 1200, 900]  # each group closes at the first batch past 1,000 rows
    assert pq.read_table(out).column("n").to_pylist() == list(range(4500))
    assert pq.read_schema(out).metadata == {b"usdirect.k": b"v"}


def test_a_failing_source_or_write_raises_its_own_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Row groups are written on a thread of their own: a source that fails midway, and a write that
    fails there (a batch of another schema), both reach the caller as they are."""
    monkeypatch.setattr(inventory_dedupe, "_ROW_GROUP", 100)
    table = pa.table({"n": pa.array(range(1000), pa.int64())})

    def broken() -> Iterator[pa.RecordBatch]:
        yield from table.to_batches(max_chunksize=100)[:5]
        raise LookupError("the feed broke at row 500")

    with pytest.raises(LookupError, match="row 500"):
        write_batches(table.schema, broken(), tmp_path / "broken.parquet")
    wrong = pa.record_batch({"n": pa.array(["x"] * 100)})
    with pytest.raises(pa.ArrowInvalid):
        write_batches(table.schema, [*table.to_batches(max_chunksize=100)[:3], wrong], tmp_path / "w.parquet")


@pytest.mark.parametrize("where", ["mapping", "writing"])
def test_a_failure_in_any_stage_reaches_the_caller_and_stops_every_stage_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """Raw hashes, mapping and row hashes run on threads of their own, a chunk apart: an error on
    one of them (the template failing on a later chunk) or after them (the Parquet write) is the
    error the caller sees, and no stage is left running on a closed hashing connection."""
    monkeypatch.setattr(inventory_transform, "FEED_BLOCK_SIZE", 32 << 10)  # many small chunks
    monkeypatch.setattr(inventory_transform, "CHUNK_ROWS", 256)
    monkeypatch.setattr(inventory_dedupe, "_ROW_GROUP", 256)
    feed = tmp_path / "feed.csv"
    write_catalog_csv(Catalog(5000, 5), feed)
    template = load_template(TEMPLATE)
    calls = 0

    if where == "mapping":
        real = type(template).map_batch

        def map_batch(self: object, *args: object, **kwargs: object) -> object:
            nonlocal calls
            calls += 1
            if calls == 4:
                raise LookupError("the template broke on the fourth chunk")
            return real(self, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(type(template), "map_batch", map_batch)
        expected: type[Exception] = LookupError
    else:
        real_write = pq.ParquetWriter.write_table

        def write_table(self: pq.ParquetWriter, *args: object, **kwargs: object) -> None:
            nonlocal calls
            calls += 1
            if calls == 3:
                raise OSError("disk full while writing the third row group")
            real_write(self, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(pq.ParquetWriter, "write_table", write_table)
        expected = OSError

    with pytest.raises(expected):
        inventory_transform.transform_feed(feed, template, tmp_path / "m.parquet", tmp_path / "r.parquet")
    assert not [t.name for t in threading.enumerate() if t.name.startswith("usdirect-")]

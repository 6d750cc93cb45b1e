"""Mapping only the changed rows of a feed gives exactly what mapping every row gives."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sandbox.catalog import Catalog, Shares, write_catalog_csv
from tests.support.inventory import inventory
from tests.support.paths import REPO
from usdirect.domain.inventory import MAPPED_COLUMNS
from usdirect.engine.reuse import BaseChangedError, MappedFeed, Matcher, feed_rows, feed_source
from usdirect.engine.transform import transform_feed
from usdirect.mapping import load_template
from usdirect.targets.warehouse import inventory as iw
from usdirect.targets.warehouse.sql import Warehouse

SEED = 7
TEMPLATE = REPO / "include" / "mappings" / "inventory.yaml"
SMALL = Shares(price=0.02, quantity=0.04, new=0.02, removed=0.02)
COLUMNS = (*MAPPED_COLUMNS, "row_hash", "_raw_hash")


@pytest.fixture(scope="module")
def template():
    return load_template(TEMPLATE)


def _feeds(tmp_path: Path, shares: Shares = SMALL, dirty: bool = False) -> tuple[Path, Path]:
    catalog = Catalog(3_000, SEED)
    v0, v1 = tmp_path / "v0.csv", tmp_path / "v1.csv"
    write_catalog_csv(catalog, v0, dirty=dirty)
    catalog.next_version(shares)
    write_catalog_csv(catalog, v1, dirty=dirty)
    return v0, v1


def _rows(source: str) -> list[tuple]:
    with duckdb.connect() as conn:  # not duckdb's default connection, which other tests share
        return conn.sql(f"SELECT {', '.join(COLUMNS)} FROM {source} ORDER BY sku").fetchall()


def _map(template, feed: Path, out: Path, base: Path | None = None):
    names = {k: out.with_name(f"{out.stem}.{k}.parquet") for k in ("rejects", "dropped")}
    result = transform_feed(feed, template, out, names["rejects"], dropped=names["dropped"], base=base)
    whole = MappedFeed(out, base, names["dropped"], result.base_id) if result.reused else out
    return result, whole, pq.read_table(names["rejects"])


def test_reused_rows_and_mapped_rows_equal_mapping_everything(template, tmp_path: Path) -> None:
    v0, v1 = _feeds(tmp_path)
    _, base, _ = _map(template, v0, tmp_path / "c0.parquet")
    reused, feed, rejects = _map(template, v1, tmp_path / "r1.parquet", base=base)
    everything, full, full_rejects = _map(template, v1, tmp_path / "f1.parquet")

    assert everything.reused == 0 and 0 < reused.reused < reused.skus
    assert isinstance(feed, MappedFeed)
    assert pq.read_metadata(feed.fresh).num_rows == reused.skus - reused.reused  # only these were mapped
    assert _rows(feed_source(feed)) == _rows(feed_source(full))
    assert feed_rows(feed) == feed_rows(full) == everything.skus == reused.skus
    assert (reused.read, reused.rejected) == (everything.read, everything.rejected)
    assert rejects.equals(full_rejects)


def test_duplicate_skus_or_a_large_change_map_the_whole_feed(template, tmp_path: Path) -> None:
    # A dirty feed lists some SKUs twice: the duplicate rule needs every row, so nothing is reused.
    v0, v1 = _feeds(tmp_path, dirty=True)
    _, base, _ = _map(template, v0, tmp_path / "c0.parquet")
    result, feed, rejects = _map(template, v1, tmp_path / "r1.parquet", base=base)
    everything, full, full_rejects = _map(template, v1, tmp_path / "f1.parquet")
    assert result.reused == 0 and result.duplicates == everything.duplicates > 0
    assert _rows(feed_source(feed)) == _rows(feed_source(full)) and rejects.equals(full_rejects)
    assert pq.read_table(tmp_path / "r1.dropped.parquet").num_rows == 0

    # A third of the catalog changed: a complete file is cheaper to read and a better base.
    (tmp_path / "big").mkdir()
    w0, w1 = _feeds(tmp_path / "big", Shares(price=0.2, quantity=0.2, new=0.01, removed=0.01))
    _, big_base, _ = _map(template, w0, tmp_path / "big" / "c0.parquet")
    changed, _, _ = _map(template, w1, tmp_path / "big" / "r1.parquet", base=big_base)
    assert changed.reused == 0


@pytest.mark.parametrize("repeat", ["an unchanged row's sku", "a new sku twice"])
def test_a_fresh_row_repeating_a_sku_maps_the_whole_feed(template, tmp_path: Path, repeat: str) -> None:
    """A SKU repeated with other values is not a repeated raw row, so only the SKUs can tell: a
    fresh row that repeats the SKU of a row taken from the base, or of another fresh row."""
    v0, v1 = _feeds(tmp_path)
    _, base, _ = _map(template, v0, tmp_path / "c0.parquet")
    with v1.open(newline="", encoding="utf-8") as src:
        rows = list(csv.DictReader(src))
    extra = [{**rows[10], "title": "Same SKU, other title"}]  # rows[10] is unchanged since v0
    if repeat == "a new sku twice":
        extra = [{**rows[10], "sku": "NEW-1", "title": t} for t in ("First", "Second")]
    with v1.open("a", newline="", encoding="utf-8") as out:
        csv.DictWriter(out, fieldnames=list(rows[0])).writerows(extra)
    result, feed, rejects = _map(template, v1, tmp_path / "r1.parquet", base=base)
    everything, full, full_rejects = _map(template, v1, tmp_path / "f1.parquet")
    assert result.reused == 0 and result.duplicates == everything.duplicates == 1
    assert _rows(feed_source(feed)) == _rows(feed_source(full)) and rejects.equals(full_rejects)


def test_another_template_or_a_missing_base_maps_everything(template, tmp_path: Path) -> None:
    v0, v1 = _feeds(tmp_path)
    _, base, _ = _map(template, v0, tmp_path / "c0.parquet")
    other = template.with_switches(sync_pricing=False)
    assert _map(other, v1, tmp_path / "o1.parquet", base=base)[0].reused == 0
    assert _map(template, v1, tmp_path / "m1.parquet", base=tmp_path / "gone.parquet")[0].reused == 0


def test_a_replaced_base_is_refused_with_the_fix(template, tmp_path: Path) -> None:
    v0, v1 = _feeds(tmp_path)
    _, base, _ = _map(template, v0, tmp_path / "c0.parquet")
    _, feed, _ = _map(template, v1, tmp_path / "r1.parquet", base=base)
    _map(template, v0, tmp_path / "c0.parquet")  # the earlier run is run again: a new complete file
    with pytest.raises(BaseChangedError, match="re-run this whole DAG run"):
        feed.source()


def test_warehouse_load_of_a_reused_feed_equals_the_full_one(template, wh: Warehouse, tmp_path: Path) -> None:
    v0, v1 = _feeds(tmp_path)
    _, base, _ = _map(template, v0, tmp_path / "c0.parquet")
    _, feed, _ = _map(template, v1, tmp_path / "r1.parquet", base=base)
    _, full, _ = _map(template, v1, tmp_path / "f1.parquet")
    now = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
    iw.load_full(wh, "a", "r0", base, now)
    iw.load_full(wh, "b", "r0", base, now)
    later = now + dt.timedelta(hours=1)  # each load at its own time, as a real run's is
    reused = iw.load_full(wh, "a", "r1", feed, later)
    mapped = iw.load_full(wh, "b", "r1", full, later)
    assert reused == mapped and reused.updated > 0 and reused.inserted > 0 and reused.archived > 0
    assert _stored(wh, "a") == _stored(wh, "b")


def test_a_sku_the_warehouse_changed_but_the_feed_did_not_is_restored_from_the_whole_feed(
    template, wh: Warehouse, tmp_path: Path
) -> None:
    """The changed rows are read from the rows the run mapped itself, which hold them when only the
    feed changed; a SKU changed in the warehouse since (here by hand, as the changes DAG does) has
    its unchanged row in the base, so that load reads the whole feed and still restores it."""
    v0, v1 = _feeds(tmp_path)
    _, base, _ = _map(template, v0, tmp_path / "c0.parquet")
    _, feed, _ = _map(template, v1, tmp_path / "r1.parquet", base=base)
    _, full, _ = _map(template, v1, tmp_path / "f1.parquet")
    assert isinstance(feed, MappedFeed)
    fresh = set(pq.read_table(feed.fresh, columns=["sku"]).column("sku").to_pylist())
    untouched = sorted(set(pq.read_table(base, columns=["sku"]).column("sku").to_pylist()) - fresh)[0]
    now = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
    p = wh.placeholder
    for account in ("a", "b"):
        iw.load_full(wh, account, "r0", base, now)
        with wh.connect() as conn:
            wh.execute(
                conn,
                f"UPDATE {wh.table(iw.INVENTORY)} SET quantity = quantity + 7, row_hash = row_hash + 1 "
                f"WHERE account = {p} AND sku = {p}",
                (account, untouched),
            )
    later = now + dt.timedelta(hours=1)
    reused = iw.load_full(wh, "a", "r1", feed, later)
    mapped = iw.load_full(wh, "b", "r1", full, later)
    assert reused == mapped and reused.updated > 0
    stored = _stored(wh, "a")
    assert stored == _stored(wh, "b")
    assert stored[untouched]["quantity"] == _rows_by_sku(full)[untouched]["quantity"]


def _rows_by_sku(feed: Path) -> dict[str, dict]:
    return {r["sku"]: r for r in pq.read_table(feed).to_pylist()}


def _stored(wh: Warehouse, account: str) -> dict[str, dict]:
    return {sku: {k: v for k, v in r.items() if k != "account"} for sku, r in inventory(wh, account).items()}


def test_matcher_finds_rows_in_feed_order_and_notices_a_row_seen_twice() -> None:
    base = np.array([50, 10, 40, 20, 30], dtype=np.int64)
    matcher = Matcher(base)
    assert matcher.known(pa.array([30, 99, 10, 5], pa.int64())).to_pylist() == [True, False, True, False]
    assert not matcher.repeated and matcher.reused == 2
    assert matcher.known(pa.array([60, 40], pa.int64())).to_pylist() == [False, True]
    assert not matcher.repeated  # 60 is above every base hash: not found, not an error
    assert matcher.dropped().column(0).to_pylist() == [20, 50]
    assert matcher.known(pa.array([10], pa.int64())).to_pylist() == [True]
    assert matcher.repeated  # seen in an earlier chunk

    within = Matcher(base)
    assert within.known(pa.array([20, 7, 20], pa.int64())).to_pylist() == [True, False, True]
    assert within.repeated  # twice in one chunk
    assert Matcher(np.array([], dtype=np.int64)).known(pa.array([1], pa.int64())).to_pylist() == [False]

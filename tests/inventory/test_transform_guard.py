"""The duplicate-SKU rule, the guard's decisions and messages, and the transform's row accounting."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sandbox.catalog import Catalog, write_catalog_csv
from tests.support.inventory import T0, mapped_file, row
from tests.support.paths import REPO
from usdirect.engine.dedupe import ROW, dedupe_and_hash
from usdirect.engine.guard import FeedShrinkError, check_feed_size
from usdirect.engine.transform import transform_feed
from usdirect.mapping import load_template


def test_duplicates_newest_updated_at_wins_then_last_occurrence(tmp_path: Path) -> None:
    later = T0 + dt.timedelta(hours=1)
    rows = [
        row("1", quantity=1, source_updated_at=later),  # row 1: newest → kept
        row("1", quantity=2),  # row 2: older although later in the file
        row("2", quantity=3),  # row 3
        row("2", quantity=4),  # row 4: same time, last occurrence → kept
        row("3", quantity=5),
    ]
    out = mapped_file(tmp_path, rows)
    kept = {r["sku"]: r for r in pq.read_table(out).to_pylist()}
    assert {s: (r["quantity"], r[ROW]) for s, r in kept.items()} == {
        "USD-1": (1, 1),
        "USD-2": (4, 4),
        "USD-3": (5, 5),
    }
    parts = tmp_path / "again.parquet"
    result = dedupe_and_hash(out.with_name("mapped.parquet"), parts)  # already unique: one pass, no rejects
    assert result.skus == 3 and result.duplicates.num_rows == 0


def test_duplicate_rejects_name_the_winning_row(tmp_path: Path) -> None:
    import pyarrow as pa

    from usdirect.domain.inventory import conform

    rows = [row("7", quantity=1), row("7", quantity=2), row("8", cost="1.00"), row("8", cost="9.00")]
    table = conform(pa.Table.from_pylist(rows))
    table = table.append_column(ROW, pa.array([10, 20, 30, 40], pa.int64()))
    parts = tmp_path / "parts.parquet"
    pq.write_table(table, parts)
    result = dedupe_and_hash(parts, tmp_path / "out.parquet")
    assert result.skus == 2
    rejects = result.duplicates.to_pylist()
    # The winning row is in a column of its own (it used to be inside the reason: "duplicate sku:
    # row 20 kept ..."), so every duplicate has the same reason text and the reasons group.
    assert [(r["row_number"], r["key"], r["kept_row_number"]) for r in rejects] == [
        (10, "USD-7", 20),
        (30, "USD-8", 40),
    ]
    assert {r["reason"] for r in rejects} == {
        "duplicate sku: another row of the same SKU was kept (newest updated_at, then last in file)"
    }


@pytest.mark.parametrize(
    ("skus", "last", "share", "ok"),
    [
        (100, None, 0.2, True),
        (80, 100, 0.2, True),
        (79, 100, 0.2, False),
        (0, None, 0.2, False),
        (0, 10, 0.2, False),
    ],
)
def test_guard_decisions(skus: int, last: int | None, share: float, ok: bool) -> None:
    if ok:
        assert check_feed_size(skus, last, share, allow_shrink=False) is None
        return
    with pytest.raises(FeedShrinkError) as err:
        check_feed_size(skus, last, share, allow_shrink=False)
    message = str(err.value)
    assert f"{skus:,}" in message and (last is None or f"{last:,}" in message)
    assert "allow_shrink" in message and "Nothing was loaded, archived or published" in message
    note = check_feed_size(skus, last, share, allow_shrink=True)
    assert note is not None and "allow_shrink" in note


def test_transform_accounts_for_every_row(tmp_path: Path) -> None:
    feed = tmp_path / "feed.csv"
    dirty = write_catalog_csv(Catalog(500, 7), feed, dirty=True)
    template = load_template(REPO / "include" / "mappings" / "inventory.yaml")
    result = transform_feed(feed, template, tmp_path / "m.parquet", tmp_path / "r.parquet")
    assert result.read == 500 + len(dirty)
    assert result.rejected == len(dirty) and result.duplicates == 1
    assert result.skus == 500 + len(dirty) - result.rejected
    assert pq.read_table(tmp_path / "m.parquet").num_rows == result.skus

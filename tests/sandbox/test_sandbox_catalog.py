"""The catalog generator: determinism, realistic values, next versions, dirty rows, the CSV file."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from sandbox.catalog import DIRTY_KINDS, FEED_COLUMNS, Catalog, Shares, write_catalog_csv, write_feed_csv


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_same_seed_same_catalog_other_seed_differs() -> None:
    a, b, c = Catalog(500, 7).table(), Catalog(500, 7).table(), Catalog(500, 8).table()
    assert a.equals(b)
    assert not a.equals(c)


def test_sku_values_do_not_depend_on_catalog_size() -> None:
    small, large = Catalog(100, 42).table().to_pylist(), Catalog(5000, 42).table().to_pylist()
    assert small == large[:100]


def test_values_are_realistic() -> None:
    rows = Catalog(20_000, 42).table().to_pylist()
    titles = [r["title"] for r in rows]
    assert any("," in t for t in titles) and any('"' in t for t in titles)
    assert any(not t.isascii() for t in titles)
    for r in rows[:2000]:
        upc = r["upc"]
        assert len(upc) == 12 and upc.isdigit()
        digits = [int(d) for d in upc]
        assert (sum(digits[0:11:2]) * 3 + sum(digits[1:11:2]) + digits[11]) % 10 == 0
    assert any(r["upc"].startswith("0") for r in rows)
    assert any(r["msrp"] is None for r in rows) and any(r["map"] is None for r in rows)
    assert any(r["cost"].startswith("$") and "," in r["cost"] for r in rows)
    assert any(r["quantity"] == "100+" for r in rows)
    assert {r["status"] for r in rows} == {"active", "backorder", "discontinued"}
    assert any(r["length_in"] is None for r in rows) and any(r["image_url"] is None for r in rows)
    assert any(float(r["weight_lb"]) > 30 for r in rows)
    assert all(r["category"] and " > " in r["category"] for r in rows)


def test_next_version_applies_the_shares() -> None:
    catalog = Catalog(10_000, 42)
    before = catalog.table().to_pylist()
    at = int(catalog.updated_at.max()) + 3600
    changed = catalog.next_version(Shares(price=0.1, quantity=0.2, new=0.05, removed=0.03), at=at)
    assert changed == {"price": 1000, "quantity": 2000, "new": 500, "removed": 300}
    after = {r["sku"]: r for r in catalog.table().to_pylist()}
    assert len(after) == 10_000 - 300 + 500
    gone = [r for r in before if r["sku"] not in after]
    assert len(gone) == 300
    moved = [r for r in before if r["sku"] in after and after[r["sku"]] != r]
    assert 2000 <= len(moved) <= 3000
    assert all(after[r["sku"]]["updated_at"] != r["updated_at"] for r in moved)
    unchanged = [r for r in before if r["sku"] in after and after[r["sku"]] == r]
    assert len(unchanged) + len(moved) + len(gone) == 10_000
    new_skus = sorted(set(after) - {r["sku"] for r in before}, key=int)
    assert new_skus[0] == "110000" and len(new_skus) == 500


def test_discontinued_skus_stay_discontinued() -> None:
    catalog = Catalog(3000, 42)
    discontinued = {r["sku"] for r in catalog.table().to_pylist() if r["status"] == "discontinued"}
    for _ in range(3):
        catalog.next_version(Shares(quantity=0.5, removed=0))
    catalog.touch(np.array([int(s) - 100_000 for s in sorted(discontinued)[:5]]), at=0)
    after = {r["sku"]: r for r in catalog.table().to_pylist()}
    assert discontinued and all(after[s]["status"] == "discontinued" for s in discontinued)
    assert all(after[s]["quantity"] == "0" for s in discontinued)
    moved = [r for r in after.values() if r["status"] != "discontinued" and r["updated_at"] > "2026-11-20"]
    assert {r["status"] for r in moved} == {"active", "backorder"}


def test_next_version_is_deterministic() -> None:
    a, b = Catalog(2000, 3), Catalog(2000, 3)
    a.next_version(at=a.epoch + 10)
    b.next_version(at=b.epoch + 10)
    assert a.table().equals(b.table())


def test_touch_moves_rows_past_every_other_row() -> None:
    catalog = Catalog(1000, 42)
    latest = int(catalog.updated_at.max())
    catalog.touch(np.array([5, 6]), at=0)
    assert catalog.updated_at[5] == catalog.updated_at[6] == latest + 1
    keys, indices = catalog.changes_order()
    assert list(indices[-2:]) == [5, 6]
    assert (np.diff(keys) > 0).all()


def test_write_feed_csv_round_trips(tmp_path: Path) -> None:
    path = write_feed_csv(tmp_path / "feed.csv", 3000, seed=42)
    rows = _rows(path)
    assert tuple(rows[0]) == FEED_COLUMNS
    assert len(rows) == 3001
    assert all(len(r) == len(FEED_COLUMNS) for r in rows)
    expected = Catalog(3000, 42).table().to_pylist()
    assert [dict(zip(FEED_COLUMNS, r, strict=True)) for r in rows[1:]] == [
        {k: ("" if v is None else v) for k, v in row.items()} for row in expected
    ]
    v1 = _rows(write_feed_csv(tmp_path / "v1.csv", 3000, seed=42, version=1))
    assert v1 != rows


def test_dirty_rows_are_listed_where_they_are(tmp_path: Path) -> None:
    catalog = Catalog(3000, 42)
    dirty = write_catalog_csv(catalog, tmp_path / "dirty.csv", dirty=True)
    lines = _rows(tmp_path / "dirty.csv")
    assert len(lines) == 1 + 3000 + len(dirty)
    assert [d["kind"] for d in dirty] == [k for _ in range(3) for k in DIRTY_KINDS]
    clean_skus = {r[0] for r in lines[1:]} - {d["sku"] for d in dirty}
    for d in dirty:
        fields = lines[d["line"] - 1]
        kind = d["kind"]
        if kind == "wrong_column_count":
            assert len(fields) != len(FEED_COLUMNS)
            continue
        assert len(fields) == len(FEED_COLUMNS)
        row = dict(zip(FEED_COLUMNS, fields, strict=True))
        if kind == "blank_sku":
            assert row["sku"] == ""
        elif kind == "duplicate_sku":
            assert sum(1 for r in lines[1:] if r[0] == row["sku"]) == 2
        elif kind == "negative_quantity":
            assert int(row["quantity"]) < 0
        elif kind == "non_numeric_quantity":
            assert not row["quantity"].rstrip("+").isdigit()
        else:
            with pytest.raises(ValueError):
                float(row["cost"].replace("$", "").replace(",", ""))
    assert len(clean_skus) >= 3000 - 3


def test_limit_writes_a_short_feed(tmp_path: Path) -> None:
    write_catalog_csv(Catalog(1000, 42), tmp_path / "short.csv", limit=400)
    assert len(_rows(tmp_path / "short.csv")) == 401
    write_catalog_csv(Catalog(1000, 42), tmp_path / "empty.csv", limit=0)
    assert _rows(tmp_path / "empty.csv") == [list(FEED_COLUMNS)]

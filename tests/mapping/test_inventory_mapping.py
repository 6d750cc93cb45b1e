"""The inventory template on the sandbox's clean and dirty feeds, edge values and a renamed feed."""

from __future__ import annotations

import csv
import json
import threading
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from sandbox.catalog import SKU_BASE, STATUSES, Catalog, write_catalog_csv
from tests.support.mapping import line_of, text_table
from tests.support.paths import MAPPINGS
from usdirect.mapping import (
    REJECT_SCHEMA,
    RejectShareExceededError,
    TemplateError,
    check_reject_share,
    load_template,
)
from usdirect.mapping.errors import FeedFormatError
from usdirect.mapping.feed_reader import read_feed_batches

SEED = 42


@pytest.fixture(scope="module")
def inventory():
    return load_template(MAPPINGS / "inventory.yaml")


def _map_feed(template, path: Path, block_size: int = 1 << 20):
    reader = read_feed_batches(path, template, block_size=block_size)
    results = [template.map_batch(fb.batch, row_numbers=fb.row_numbers) for fb in reader]
    mapped = pa.concat_tables([r.mapped for r in results])
    rejects = pa.concat_tables([r.rejects for r in results])
    return reader, mapped, rejects


def _money(cents: int) -> Decimal | None:
    return None if cents < 0 else Decimal(cents) / 100


def test_clean_sandbox_feed_maps_every_value(inventory, tmp_path: Path) -> None:
    catalog = Catalog(2000, SEED)
    path = tmp_path / "feed.csv"
    write_catalog_csv(catalog, path)
    reader, mapped, rejects = _map_feed(inventory, path, block_size=64 << 10)
    assert rejects.num_rows == 0 and reader.rejects.num_rows == 0
    assert mapped.num_rows == reader.rows_read == 2000
    assert mapped.schema == inventory.mapped_schema
    feed = catalog.table().to_pylist()
    dollar_rows = 0
    for row, source in zip(mapped.to_pylist(), feed, strict=True):
        i = int(source["sku"]) - SKU_BASE
        assert row["sku"] == f"USD-{source['sku']}"
        assert row["supplier_sku"] == source["sku"]
        assert row["title"] == source["title"] and row["brand"] == source["brand"]
        assert row["upc"] == source["upc"] and len(row["upc"]) == 12
        assert row["cost"] == _money(int(catalog.cost[i]))
        assert row["msrp"] == _money(int(catalog.msrp[i]))
        assert row["map"] == _money(int(catalog.map[i]))
        assert row["quantity"] == min(int(catalog.quantity[i]), 100)
        assert row["status"] == STATUSES[catalog.status[i]]
        assert row["archived"] is (row["status"] == "discontinued")
        assert row["weight_lb"] == Decimal(source["weight_lb"])
        assert row["length_in"] == (Decimal(source["length_in"]) if source["length_in"] else None)
        assert row["image_url"] == source["image_url"]
        assert row["source_updated_at"] == datetime.fromtimestamp(int(catalog.updated_at[i]), UTC)
        dollar_rows += source["cost"].startswith("$")
    assert dollar_rows > 0, "the sample should contain '$1,299.00'-style costs"
    assert (mapped.column("quantity").to_numpy() == 100).sum() > 0  # "100+" rows


def test_dirty_sandbox_feed_rejects_each_broken_row_with_its_reason(inventory, tmp_path: Path) -> None:
    catalog = Catalog(3000, SEED)
    path = tmp_path / "dirty.csv"
    dirty = write_catalog_csv(catalog, path, dirty=True)
    reader, mapped, rejects = _map_feed(inventory, path, block_size=32 << 10)
    lines = list(csv.reader(path.open(newline="")))
    data_rows = len(lines) - 1
    # Nothing lost: every data row is mapped, rejected or reported as malformed.
    assert mapped.num_rows + rejects.num_rows + reader.rejects.num_rows == data_rows
    expected = {
        "blank_sku": "sku is required but empty (source 'sku')",
        "negative_quantity": "quantity: negative quantity",
        "non_numeric_quantity": "quantity: not a valid int (source 'quantity')",
        "unparseable_price": "cost: not a valid decimal(12,2) (source 'cost')",
    }
    by_row = {r["row_number"]: r for r in rejects.to_pylist()}
    malformed = {r["row_number"]: r for r in reader.rejects.to_pylist()}
    kinds = {d["kind"] for d in dirty}
    assert kinds == {*expected, "duplicate_sku", "wrong_column_count"}
    for entry in dirty:
        row_number = entry["line"] - 1
        if entry["kind"] in expected:
            reject = by_row.pop(row_number)
            assert expected[entry["kind"]] in reject["reason"]
            raw = json.loads(reject["raw"])
            assert raw["sku"] == entry["sku"]
            assert reject["key"] == (f"USD-{entry['sku']}" if entry["sku"] else "")
            assert reject["operation"] == "inventory"
        elif entry["kind"] == "wrong_column_count":
            bad = malformed.pop(row_number)
            assert bad["key"] == entry["sku"]
            assert "malformed CSV row: 14 values where the header has 17" in bad["reason"]
            assert (
                json.loads(bad["raw"])["text"].startswith(f'"{entry["sku"]}"') or entry["sku"] in bad["raw"]
            )
    assert by_row == {} and malformed == {}
    # Row numbers of mapped rows point at their own line, also after skipped malformed rows.
    for row_number, supplier_sku in zip(
        mapped.column("row_number").to_pylist(), mapped.column("supplier_sku").to_pylist(), strict=True
    ):
        assert lines[row_number][0] == supplier_sku
    # Duplicate SKUs are left to the pipeline: both rows are mapped.
    skus = mapped.column("supplier_sku").to_numpy(zero_copy_only=False)
    assert len(skus) - len(np.unique(skus)) == sum(d["kind"] == "duplicate_sku" for d in dirty)


def test_edge_values(inventory) -> None:
    table = text_table(
        {
            "sku": [" 10234 ", "10235", "10236", "10237"],
            "title": ['Grill Brush, "Pro"', "Tent", "Chair", "Lamp"],
            "brand": ["GrillPro", "", "X", "Y"],
            "mpn": ["GP-1", "C1", "M", "M"],
            "upc": ["012345678905", "", "1", "2"],
            "cost": ["$1,299.00", "12.345", "abc", "1.5"],
            "msrp": ["", " 24.99 ", "", ""],
            "map": ["", "19.99", "", ""],
            "quantity": ["100+", "7", "5", "lots"],
            "status": ["Discontinued", "active", "backorder", "weird"],
            "weight_lb": ["1.2", "0.0005", "", "1"],
            "length_in": ["", "18", "", ""],
            "width_in": ["", "3.25", "", ""],
            "height_in": ["", "", "", ""],
            "category": ["Outdoor > Grilling", "", "", ""],
            "image_url": ["", "https://x/1.jpg", "", ""],
            "updated_at": ["2026-11-20T08:15:00Z", "2026-11-20T09:15:00+01:00", "2026-11-20T08:15:00", "x"],
        }
    )
    result = inventory.map_batch(table, row_offset=100)
    rows = result.mapped.to_pylist()
    assert [r["row_number"] for r in rows] == [101, 102]
    first, second = rows
    assert first["sku"] == "USD-10234" and first["supplier_sku"] == "10234"
    assert first["cost"] == Decimal("1299.00") and first["msrp"] is None and first["map"] is None
    assert first["quantity"] == 100
    assert first["status"] == "discontinued" and first["archived"] is True
    assert first["title"] == 'Grill Brush, "Pro"'
    assert first["upc"] == "012345678905"
    assert second["cost"] == Decimal("12.35")  # rounded half away from zero to the 2 decimals
    assert second["msrp"] == Decimal("24.99") and second["map"] == Decimal("19.99")
    assert second["brand"] is None and second["upc"] is None  # blank text is null
    assert second["weight_lb"] == Decimal("0.001")
    assert second["width_in"] == Decimal("3.25")
    assert second["archived"] is False
    ts = datetime(2026, 11, 20, 8, 15, tzinfo=UTC)
    assert first["source_updated_at"] == ts and second["source_updated_at"] == ts
    rejects = {r["row_number"]: r for r in result.rejects.to_pylist()}
    assert result.rejects.schema == REJECT_SCHEMA
    assert rejects[103]["reason"] == "cost: not a valid decimal(12,2) (source 'cost')"
    assert rejects[103]["key"] == "USD-10236"
    assert json.loads(rejects[103]["raw"])["cost"] == "abc"
    assert rejects[104]["reason"].split("; ") == [
        "quantity: not a valid int (source 'quantity')",
        f"unknown status weird: add it to the feed_statuses value map in {MAPPINGS / 'value_maps.yaml'}",
        "source_updated_at: not a valid timestamp (source 'updated_at')",
    ]


RENAMES = {
    "sku": "Item#",
    "title": "Description",
    "cost": "Dealer Cost",
    "quantity": "Qty Avail",
    "msrp": "List Price",
    "status": "Item Status",
}


def test_renamed_feed_maps_after_editing_only_a_copy_of_the_template(
    inventory, mappings_copy: Path, tmp_path: Path
) -> None:
    catalog = Catalog(500, SEED)
    original = tmp_path / "feed.csv"
    write_catalog_csv(catalog, original)
    renamed = tmp_path / "renamed.csv"
    header, _, body = original.read_text().partition("\n")
    new_header = ",".join(RENAMES.get(c, c) for c in header.split(","))
    renamed.write_text(new_header + "\n" + body)

    # The bundled template points at the line to edit.
    with pytest.raises(TemplateError) as caught:
        read_feed_batches(renamed, inventory)
    text = (MAPPINGS / "inventory.yaml").read_text()
    issue = next(i for i in caught.value.issues if "'sku'" in i.message)
    assert issue.line == line_of(text, "source: sku")
    assert "source column 'sku' is not in the feed" in issue.message and "Item#" in issue.fix

    # Edit the copy: only `source:` lines change.
    path = mappings_copy / "inventory.yaml"
    edited = path.read_text()
    for old, new in RENAMES.items():
        edited = edited.replace(f"    source: {old}\n", f'    source: "{new}"\n')
    path.write_text(edited)
    renamed_template = load_template(path)
    _reader, mapped, rejects = _map_feed(renamed_template, renamed)
    _reader, expected, _ = _map_feed(inventory, original)
    assert rejects.num_rows == 0
    assert mapped.num_rows == 500
    assert mapped.drop_columns(["row_number"]).equals(expected.drop_columns(["row_number"]))
    assert mapped.column("supplier_sku")[0].as_py() == str(SKU_BASE)


def test_reject_share_guard_names_the_top_reasons(inventory) -> None:
    table = text_table(
        {
            "sku": ["1", "2", "3", "4", ""],
            "quantity": ["x", "y", "1", "-1", "1"],
            **{c: [""] * 5 for c in inventory.source_columns if c not in ("sku", "quantity")},
        }
    )
    result = inventory.map_batch(table)
    assert result.rejects.num_rows == 4
    check_reject_share(100, result.rejects, max_share=0.05)
    with pytest.raises(RejectShareExceededError) as caught:
        check_reject_share(5, result.rejects, max_share=0.05)
    message = str(caught.value)
    assert "4 of 5 rows rejected (80.0%, limit 5.0%)" in message
    assert "2x quantity: not a valid int (source 'quantity')" in message
    assert message.index("2x quantity") < message.index("1x quantity: negative quantity")


def _reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "feed-read-ahead"]


def test_reading_ahead_keeps_order_and_stops_with_the_consumer(inventory, tmp_path: Path) -> None:
    path = tmp_path / "feed.csv"
    write_catalog_csv(Catalog(3_000, SEED), path)
    batches = list(read_feed_batches(path, inventory, block_size=16 << 10))
    numbers = np.concatenate([fb.row_numbers.to_numpy() for fb in batches])
    assert len(batches) > 5 and numbers.tolist() == list(range(1, 3_001))

    # A consumer that stops after the first batch leaves no reading thread behind.
    reader = iter(read_feed_batches(path, inventory, block_size=16 << 10))
    next(reader)
    reader.close()
    assert _reader_threads() == []


def test_a_read_error_on_the_reading_thread_reaches_the_consumer(inventory, tmp_path: Path) -> None:
    path = tmp_path / "feed.csv"
    write_catalog_csv(Catalog(2_000, SEED), path)
    lines = path.read_bytes().split(b"\n")
    lines[1_500] = lines[1_500].replace(b",", b",\xff\xfe", 1)  # not UTF-8, deep in the file
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(FeedFormatError, match="is not valid utf-8 text: byte 0xFF") as caught:
        list(read_feed_batches(path, inventory, block_size=16 << 10))
    # Arrow's own error reached the consumer too: it is the cause of the message naming the line.
    assert isinstance(caught.value.__cause__, pa.ArrowInvalid) and "UTF8" in str(caught.value.__cause__)
    assert _reader_threads() == []

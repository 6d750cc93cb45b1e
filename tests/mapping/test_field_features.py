"""Field features of the template language, on a custom inventory template."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from tests.support.mapping import text_table
from usdirect.mapping import TemplateError, load_template
from usdirect.mapping.feed_reader import read_feed_batches

TEMPLATE = """\
operation: inventory
value_maps:
  yes_no:
    values: {Y: true, N: false}
    ignore_case: true
    on_missing: null
  status_words:
    values: {A: active, B: backorder}
    on_missing: keep
fields:
  sku:
    source: code
    transforms:
      - strip
      - case: upper
      - replace: {pattern: "[^A-Z0-9]", with: ""}
      - suffix: "-US"
  supplier_sku:
    source: code
    transforms: [strip, {remove_suffix: "-X"}]
  title:
    format: "{brand} {name} ({size})"
  brand:
    source: brand
    transforms: [strip, {case: title}]
  category:
    sources: [dept, aisle, shelf]
    join: " > "
  upc:
    source: upc
    transforms:
      - null_if: ["N/A", "-"]
  mpn:
    constant: MPN-FIXED
  quantity:
    source: qty
    default: 0
    transforms:
      - capped
      - clamp: {min: 0, max: 50}
  cost:
    source: price
    transforms:
      - currency
      - round: {digits: 1, mode: half_to_even}
  msrp:
    source: price
    transforms: [currency, {clamp: {max: 10}}]
  archived:
    source: flag
    transforms: [strip, {map: yes_no}]
  status:
    source: st
    transforms: [{map: status_words}]
  weight_lb:
    source: weight
    default: 1.5
"""


@pytest.fixture
def template(tmp_path: Path):
    path = tmp_path / "features.yaml"
    path.write_text(TEMPLATE)
    return load_template(path)


def test_field_features(template) -> None:
    table = text_table(
        {
            "code": [" ab-12 ", "cd 34-X", "ef"],
            "brand": ["acme tools", "BETA", ""],
            "name": ["Saw", "Drill", None],
            "size": ["L", "", None],
            "dept": ["Tools", "", "Home"],
            "aisle": ["Hand", "Power", ""],
            "shelf": ["", "Cordless", ""],
            "upc": ["N/A", "012", "-"],
            "qty": ["100+", "-5", ""],
            "price": ["$1,234.25", "0.35", "9.95"],
            "flag": ["y", " N ", "maybe"],
            "st": ["A", "B", "Z"],
            "weight": ["", "2", ""],
        }
    )
    result = template.map_batch(table)
    assert result.rejects.num_rows == 0
    rows = result.mapped.to_pylist()
    assert [r["sku"] for r in rows] == ["AB12-US", "CD34X-US", "EF-US"]
    assert [r["supplier_sku"] for r in rows] == ["ab-12", "cd 34", "ef"]
    assert [r["title"] for r in rows] == ["acme tools Saw (L)", "BETA Drill ()", "  ()"]
    assert [r["brand"] for r in rows] == ["Acme Tools", "Beta", None]
    assert [r["category"] for r in rows] == ["Tools > Hand", "Power > Cordless", "Home"]
    assert [r["upc"] for r in rows] == [None, "012", None]
    assert [r["mpn"] for r in rows] == ["MPN-FIXED"] * 3
    assert [r["quantity"] for r in rows] == [50, 0, 0]
    assert [r["cost"] for r in rows] == [Decimal("1234.20"), Decimal("0.40"), Decimal("10.00")]
    assert [r["msrp"] for r in rows] == [Decimal("10.00"), Decimal("0.35"), Decimal("9.95")]
    assert [r["archived"] for r in rows] == [True, False, None]
    assert [r["status"] for r in rows] == ["active", "backorder", "Z"]
    assert [r["weight_lb"] for r in rows] == [Decimal("1.5"), Decimal("2"), Decimal("1.5")]


def test_format_of_only_null_columns_is_null(template) -> None:
    table = text_table(
        {c: [None] for c in template.source_columns} | {"code": ["A1"]},
    )
    row = template.map_batch(table).mapped.to_pylist()[0]
    assert row["title"] is None and row["category"] is None


def test_large_string_and_chunked_input(template) -> None:
    columns = {c: ["1"] for c in template.source_columns}
    table = pa.table({c: pa.chunked_array([pa.array(v, pa.large_string())]) for c, v in columns.items()})
    assert template.map_batch(table).mapped.column("sku").to_pylist() == ["1-US"]


def test_bool_type_reads_common_spellings(tmp_path: Path) -> None:
    path = tmp_path / "bool.yaml"
    path.write_text(
        "operation: inventory\nfields:\n  sku: {source: s}\n  supplier_sku: {source: s}\n"
        "  archived: {source: a, type: bool}\n"
    )
    template = load_template(path)
    words = ["true", "FALSE", "yes", "no", "1", "0", "Y", "n", "perhaps", ""]
    result = template.map_batch(text_table({"s": [str(i) for i in range(len(words))], "a": words}))
    assert result.mapped.column("archived").to_pylist() == [
        True,
        False,
        True,
        False,
        True,
        False,
        True,
        False,
        None,
    ]
    (reject,) = result.rejects.to_pylist()
    assert reject["row_number"] == 9 and reject["reason"] == "archived: not a valid bool (source 'a')"


def test_calendar_and_precision_errors_are_rejects_not_crashes(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "operation: inventory\nfields:\n  sku: {source: s}\n  supplier_sku: {source: s}\n"
        "  source_updated_at: {source: t}\n  cost: {source: c}\n"
    )
    template = load_template(path)
    table = text_table(
        {
            "s": ["1", "2", "3", "4"],
            "t": ["2026-02-30T00:00:00Z", "2026-02-28T00:00:00Z", "2026-02-28T00:00:00-05:00", "2026-02-28"],
            "c": ["1", "12345678901.00", "-0.005", "1e3"],
        }
    )
    result = template.map_batch(table)
    reasons = {r["row_number"]: r["reason"] for r in result.rejects.to_pylist()}
    assert reasons == {
        1: "source_updated_at: not a valid timestamp (source 't')",
        2: "cost: not a valid decimal(12,2) (source 'c')",
        4: "cost: not a valid decimal(12,2) (source 'c'); "
        "source_updated_at: not a valid timestamp (source 't')",
    }
    (row,) = result.mapped.to_pylist()
    assert row["cost"] == Decimal("-0.01")
    assert row["source_updated_at"].isoformat() == "2026-02-28T05:00:00+00:00"


def test_feed_reader_checks_header_and_handles_header_only_feed(template, tmp_path: Path) -> None:
    feed = tmp_path / "feed.csv"
    feed.write_text("\ufeff" + ",".join(template.source_columns) + "\n")
    reader = read_feed_batches(feed, template)
    assert list(reader) == [] and reader.rows_read == 0 and reader.rejects.num_rows == 0
    feed.write_text("code,brand\n1,2\n")
    with pytest.raises(TemplateError, match="source column 'name' is not in the feed"):
        read_feed_batches(feed, template)
    feed.write_text("")
    with pytest.raises(ValueError, match="no header row"):
        read_feed_batches(feed, template)

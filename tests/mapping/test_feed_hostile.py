"""Hostile feed files through the reader and the transform: control characters are stripped, a feed in
another encoding is named with its byte offset and line (or read, with `encoding:` in the template),
and a header that repeats a column the template reads is refused with the columns and the line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sandbox.catalog import Catalog, write_catalog_csv
from sandbox.feed_hostile import make_hostile
from tests.support.mapping import line_of
from usdirect.domain.errors import PermanentError
from usdirect.engine.transform import transform_feed
from usdirect.mapping import load_template
from usdirect.mapping.errors import FeedFormatError, TemplateError
from usdirect.mapping.feed_reader import read_feed_batches

CONTROL = {chr(c) for c in range(32)} - {"\t", "\n", "\r"}


def _feed(tmp_path: Path, mode: str | None, size: int = 200) -> tuple[Path, Catalog]:
    catalog = Catalog(size, 7)
    path = tmp_path / "feed.csv"
    write_catalog_csv(catalog, path)
    if mode:
        make_hostile(path, mode, catalog.seed)
    return path, catalog


def _with_encoding(mappings: Path, encoding: str, name: str = "inventory.yaml") -> Path:
    """A copy of the inventory template with another `encoding:`, next to its value-map file."""
    text = (mappings / "inventory.yaml").read_text()
    assert text.count("\nencoding: utf-8\n") == 1
    path = mappings / name
    path.write_text(text.replace("\nencoding: utf-8\n", f"\nencoding: {encoding}\n"))
    return path


def _map(tmp_path: Path, feed: Path, template_path: Path) -> tuple[list[dict], list[dict]]:
    mapped, rejects = tmp_path / "mapped.parquet", tmp_path / "rejects.parquet"
    transform_feed(feed, load_template(template_path), mapped, rejects)
    return pq.read_table(mapped).to_pylist(), pq.read_table(rejects).to_pylist()


def test_control_characters_are_stripped_from_every_value(
    tmp_path: Path, mappings_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    feed, catalog = _feed(tmp_path, "control_chars")
    assert b"\x00" in feed.read_bytes()
    with caplog.at_level("WARNING", logger="usdirect.mapping.engine"):
        rows, rejects = _map(tmp_path, feed, mappings_copy / "inventory.yaml")
    logged = sorted(r.getMessage() for r in caplog.records if "Removed control characters" in r.getMessage())
    assert logged == [
        "Removed control characters (NUL ...) from 1 value(s) of source 'sku'",
        "Removed control characters (NUL ...) from 4 value(s) of source 'brand'",
        "Removed control characters (NUL ...) from 4 value(s) of source 'title'",
    ]
    assert rejects == []  # stripped, not rejected: the row is good once the debris is gone
    truth = {f"USD-{r['sku']}": r for r in catalog.table().to_pylist()}
    assert len(rows) == len(truth)
    for row in rows:
        for name in ("sku", "supplier_sku", "title", "brand"):
            assert not CONTROL & set(row[name] or ""), (row["sku"], name, row[name])
        assert (row["title"], row["brand"]) == (truth[row["sku"]]["title"], truth[row["sku"]]["brand"])
    # The first hostile row had a NUL in its SKU too: it maps to the clean SKU, not a second one.
    assert "USD-100000" in {r["sku"] for r in rows}


def test_reject_keys_never_hold_control_characters(tmp_path: Path, mappings_copy: Path) -> None:
    """A malformed row's key comes from its raw text: the NUL in it must not reach the rejects table."""
    feed, _ = _feed(tmp_path, None, 5)
    header, _, rest = feed.read_text().partition("\n")
    feed.write_text(header + "\n" + '"\x00100777","Torn row"\n' + rest)
    _, rejects = _map(tmp_path, feed, mappings_copy / "inventory.yaml")
    [reject] = rejects
    assert reject["key"] == "100777" and reject["reason"].startswith("malformed CSV row: 2 values")
    assert "\\u0000" in reject["raw"]  # the raw text keeps the evidence, escaped as JSON


def test_a_cp1252_feed_names_offset_line_and_fix(tmp_path: Path, mappings_copy: Path) -> None:
    feed, _ = _feed(tmp_path, "cp1252")
    data = feed.read_bytes()
    first = min(data.index(b) for b in (b"\xe9", b"\xf1", b"\xe4") if b in data)
    line = data.count(b"\n", 0, first) + 1
    with pytest.raises(FeedFormatError) as caught:
        _map(tmp_path, feed, mappings_copy / "inventory.yaml")
    message = str(caught.value)
    assert isinstance(caught.value, PermanentError)
    assert f"the inventory feed (feed.csv) is not valid utf-8 text: byte 0x{data[first]:02X}" in message
    assert f"at byte offset {first:,} (line {line} of the file" in message
    template = mappings_copy / "inventory.yaml"
    line_of_key = line_of(template.read_text(), "encoding: utf-8")
    assert f"set `encoding: cp1252` in {template} (line {line_of_key}); otherwise" in message
    assert "ask US Direct for a UTF-8 export" in message


def test_a_bad_byte_beyond_the_first_block_is_located_too(tmp_path: Path, mappings_copy: Path) -> None:
    """Arrow finds it while parsing a later block (not the header read): same message, exact offset."""
    feed, _ = _feed(tmp_path, None, 3000)
    data = bytearray(feed.read_bytes())
    at = data.index(b"\n", len(data) - 2000) + 12  # inside a row near the end
    data[at] = 0xFF
    feed.write_bytes(bytes(data))
    with pytest.raises(FeedFormatError, match=f"byte 0xFF at byte offset {at:,} "):
        reader = read_feed_batches(feed, load_template(mappings_copy / "inventory.yaml"), block_size=1 << 16)
        list(reader)
    # Through the transform, DuckDB reads the batches and would wrap the error in its own: it must not.
    with pytest.raises(FeedFormatError, match=f"byte 0xFF at byte offset {at:,} ") as caught:
        _map(tmp_path, feed, mappings_copy / "inventory.yaml")
    assert "Invalid Input Error" not in str(caught.value) and isinstance(caught.value, PermanentError)


def test_encoding_in_the_template_reads_the_cp1252_feed(tmp_path: Path, mappings_copy: Path) -> None:
    feed, catalog = _feed(tmp_path, "cp1252")
    rows, rejects = _map(tmp_path, feed, _with_encoding(mappings_copy, "cp1252"))
    assert rejects == []
    truth = {f"USD-{r['sku']}": r for r in catalog.table().to_pylist()}
    assert {r["sku"]: r["title"] for r in rows} == {sku: r["title"] for sku, r in truth.items()}
    assert any("ñ" in r["title"] or "é" in r["title"] for r in rows)


def test_encoding_key_is_checked_with_its_line(mappings_copy: Path) -> None:
    bad = _with_encoding(mappings_copy, "utf-9", "bad.yaml")
    good = _with_encoding(mappings_copy, "windows-1252")
    assert load_template(good).encoding == "cp1252"
    checked = subprocess.run(
        [sys.executable, "-m", "usdirect.mapping", "check", str(good)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    with pytest.raises(TemplateError) as caught:
        load_template(bad)
    line = line_of(bad.read_text(), "encoding: utf-9")
    assert f"{bad}:{line}: encoding: unknown encoding 'utf-9'" in str(caught.value)
    assert "cp1252" in str(caught.value)
    orders = mappings_copy / "orders.yaml"
    orders.write_text(
        orders.read_text().replace("operation: orders\n", "operation: orders\nencoding: cp1252\n", 1)
    )
    with pytest.raises(TemplateError, match="`encoding` applies to the inventory feed"):
        load_template(orders)


def test_a_repeated_column_the_template_reads_is_named(tmp_path: Path, mappings_copy: Path) -> None:
    feed, _ = _feed(tmp_path, "duplicate_column")
    template = mappings_copy / "inventory.yaml"
    with pytest.raises(FeedFormatError) as caught:
        read_feed_batches(feed, load_template(template))
    message = str(caught.value)
    line = line_of(template.read_text(), "source: quantity")
    assert "the inventory feed's header lists a column more than once: 'quantity' at columns 9, 18" in message
    assert f"The template {template} reads 'quantity' (line {line})" in message
    assert "Field" not in message and "exists 2 times" not in message


def test_a_repeated_column_the_template_does_not_read_is_ignored(tmp_path: Path, mappings_copy: Path) -> None:
    feed, _ = _feed(tmp_path, None, 50)
    lines = feed.read_text().splitlines()
    feed.write_text("\n".join([lines[0] + ",notes,notes", *(x + ",a,b" for x in lines[1:])]) + "\n")
    rows, rejects = _map(tmp_path, feed, mappings_copy / "inventory.yaml")
    assert rejects == [] and len(rows) == 50


def test_a_byte_the_declared_encoding_lacks_is_named(tmp_path: Path, mappings_copy: Path) -> None:
    """With `encoding: cp1252`, a byte cp1252 leaves undefined (0x81) is located the same way."""
    feed, _ = _feed(tmp_path, "cp1252", 300)
    data = bytearray(feed.read_bytes())
    at = data.index(b"\n", len(data) // 2) + 3
    data[at] = 0x81
    feed.write_bytes(bytes(data))
    template = _with_encoding(mappings_copy, "cp1252")
    with pytest.raises(FeedFormatError) as caught:
        _map(tmp_path, feed, template)
    message = str(caught.value)
    line = line_of(template.read_text(), "encoding: cp1252")
    assert f"is not valid cp1252 text: byte 0x81 at byte offset {at:,}" in message
    assert f"set `encoding:` in {template} (line {line}) to the feed's real encoding" in message

"""The mapping's fast paths skip work only where the result provably stays the same.

``strip``, ``currency`` and ``capped`` run on every value of a feed; a clean batch (no whitespace
at the ends, no '$' or ',', no "100+") is returned as it is instead of being rewritten. These tests
hold each fast path to the full Arrow kernel on every character that the kernel treats specially,
on sliced arrays (whose buffers hold bytes outside the visible values) and on nulls.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from usdirect.mapping.kernels import parse_currency, strip, uncap

WHITESPACE = [chr(c) for c in range(0x110000) if chr(c).isspace()]
# Not whitespace, though close: they must survive the trim (both paths agree on them).
LOOKALIKES = ["\x7f", "\ufeff", "\u200b", "\x00", "é", "™"]


def _full_trim(arr: pa.Array) -> list[str | None]:
    return pc.utf8_trim_whitespace(arr).to_pylist()


@pytest.mark.parametrize("char", WHITESPACE + LOOKALIKES, ids=lambda c: f"U+{ord(c):04X}")
def test_strip_equals_the_arrow_trim_for_every_whitespace_character(char: str) -> None:
    values = [f"{char}a", f"a{char}", f"{char}a{char}", f"a{char}b", char, "", None, "plain"]
    arr = pa.array(values, pa.string())
    assert strip(arr).to_pylist() == _full_trim(arr)
    for start in range(len(values)):  # sliced arrays: offsets that do not start at zero
        part = arr.slice(start)
        assert strip(part).to_pylist() == _full_trim(part), (char, start)


def test_strip_returns_clean_text_as_it_is() -> None:
    arr = pa.array(["USD-1", "Café Press!", "", None, "a b"], pa.string())
    assert strip(arr) is arr
    empty = pa.array(["", None], pa.string())
    assert strip(empty) is empty
    # A value hidden by a slice does not count: only the visible values decide.
    dirty_then_clean = pa.array([" x ", "y"], pa.string()).slice(1)
    assert strip(dirty_then_clean) is dirty_then_clean
    # Large strings and chunked arrays take the full kernel and give the same values.
    large = pa.array([" a ", "b"], pa.large_string())
    assert strip(large).to_pylist() == ["a", "b"]
    chunked = pa.chunked_array([pa.array([" a "]), pa.array(["b "])])
    assert strip(chunked).to_pylist() == ["a", "b"]


def test_strip_trims_a_batch_with_one_dirty_value_in_full() -> None:
    arr = pa.array(["a", "b", "c\u00a0"], pa.string())
    out = strip(arr)
    assert out is not arr
    assert out.to_pylist() == ["a", "b", "c"]


def test_currency_skips_batches_without_symbols_and_reads_the_others() -> None:
    clean = pa.array(["12.50", " 3 ", None, ""], pa.string())
    assert parse_currency(clean) is clean  # no '$' or ',': not rewritten (and not trimmed)
    assert parse_currency(pa.array(["$1,299.00", "5", None], pa.string())).to_pylist() == [
        "1299.00",
        "5",
        None,
    ]
    # A '$' only in a value a slice hides must not trigger the rewrite (which also trims).
    hidden = pa.array(["$5", " 7 "], pa.string()).slice(1)
    assert parse_currency(hidden).to_pylist() == [" 7 "]
    # Multi-byte characters never contain the ASCII '$' or ',' bytes.
    assert parse_currency(pa.array(["€12", "\u066b3"], pa.string())).to_pylist() == ["€12", "\u066b3"]


def test_capped_quantity_skips_batches_without_a_plus() -> None:
    clean = pa.array(["5", None, ""], pa.string())
    assert uncap(clean) is clean
    assert uncap(pa.array(["100+", "7", None], pa.string())).to_pylist() == ["100", "7", None]

"""Mapping tests' pieces: where a snippet sits in a template, and feed-shaped all-text tables."""

from __future__ import annotations

import pyarrow as pa


def line_of(text: str, snippet: str, occurrence: int = 1) -> int:
    """1-based line of the `occurrence`-th line containing `snippet`."""
    hits = [n for n, line in enumerate(text.splitlines(), start=1) if snippet in line]
    assert len(hits) >= occurrence, f"{snippet!r} not in the template"
    return hits[occurrence - 1]


def text_table(columns: dict[str, list[str | None]]) -> pa.Table:
    """An all-text table, as the feed reader produces."""
    return pa.table({name: pa.array(values, pa.string()) for name, values in columns.items()})

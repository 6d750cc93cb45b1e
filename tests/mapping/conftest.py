"""Helpers for mapping tests: copies of the bundled templates that a test may edit."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pytest

REPO = Path(__file__).resolve().parents[2]
MAPPINGS = REPO / "include" / "mappings"


def line_of(text: str, snippet: str, occurrence: int = 1) -> int:
    """1-based line of the `occurrence`-th line containing `snippet`."""
    hits = [n for n, line in enumerate(text.splitlines(), start=1) if snippet in line]
    assert len(hits) >= occurrence, f"{snippet!r} not in the template"
    return hits[occurrence - 1]


def text_table(columns: dict[str, list[str | None]]) -> pa.Table:
    """An all-text table, as the feed reader produces."""
    return pa.table({name: pa.array(values, pa.string()) for name, values in columns.items()})


@pytest.fixture
def mappings_copy(tmp_path: Path) -> Path:
    """A writable copy of include/mappings (templates + value_maps.yaml)."""
    target = tmp_path / "mappings"
    shutil.copytree(MAPPINGS, target)
    return target

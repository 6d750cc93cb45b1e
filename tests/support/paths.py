"""Where the repository and its shipped files are, for tests that read or copy them."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MAPPINGS = REPO / "include" / "mappings"

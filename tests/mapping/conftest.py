"""Fixtures for the mapping tests: copies of the bundled templates that a test may edit."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.paths import MAPPINGS


@pytest.fixture
def mappings_copy(tmp_path: Path) -> Path:
    """A writable copy of include/mappings (templates + value_maps.yaml)."""
    target = tmp_path / "mappings"
    shutil.copytree(MAPPINGS, target)
    return target

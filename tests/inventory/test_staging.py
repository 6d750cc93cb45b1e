"""Files between tasks: a local staging folder is used in place; any other fsspec filesystem (an
object store on a cluster) is streamed through a task-private temp file. fsspec's in-memory
filesystem stands in for the object store here: it takes the same non-local code path."""

from __future__ import annotations

from pathlib import Path

import pytest
from upath import UPath

from usdirect.engine import staging


def test_remote_staging_round_trip_through_temp_files() -> None:
    dest = UPath("memory://usdirect-staging/dag/run-1/inventory/mapped.parquet")
    with staging.writing(dest) as path:
        assert not str(path).startswith("/usdirect-staging")  # a local temp file, not the target
        path.write_bytes(b"PAR1" + b"x" * 10_000_000)
    assert dest.read_bytes()[:4] == b"PAR1" and dest.stat().st_size == 10_000_004
    with staging.reading(dest) as path:
        assert isinstance(path, Path) and path.stat().st_size == 10_000_004


def test_a_failed_write_leaves_nothing_staged() -> None:
    dest = UPath("memory://usdirect-staging/dag/run-2/inventory/feed.csv")
    with pytest.raises(RuntimeError), staging.writing(dest) as path:
        path.write_bytes(b"half a feed")
        raise RuntimeError("download died")
    assert not dest.exists()


def test_local_staging_is_used_in_place(tmp_path: Path) -> None:
    dest = UPath(f"file://{tmp_path}/run/inventory/feed.csv")
    with staging.writing(dest) as path:
        assert path == tmp_path / "run" / "inventory" / "feed.csv"
        path.write_text("sku\n1\n")
    with staging.reading(dest) as path:
        assert path.read_text() == "sku\n1\n"
    with (
        pytest.raises(FileNotFoundError, match="re-run the whole DAG run"),
        staging.reading(dest.parent / "x"),
    ):
        pass

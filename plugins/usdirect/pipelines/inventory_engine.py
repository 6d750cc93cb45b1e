"""The in-process DuckDB used to compare, deduplicate and hash inventory rows off the warehouse.

Memory is capped (spilling to a temp folder) so that a 2,000,000-row catalog stays well inside the
worker's 1 GB budget; rows move in record batches, never as one Python list.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

MEMORY_LIMIT = "400MB"
BATCH_ROWS = 131_072


def open_engine() -> Any:
    """A fresh in-memory DuckDB connection with a memory cap and a spill folder."""
    import duckdb

    con = duckdb.connect(":memory:")
    limit_engine(con)
    return con


def limit_engine(con: Any) -> None:
    """Cap memory and set a spill folder on a DuckDB connection (also the DuckDB warehouse's)."""
    spill = Path(tempfile.gettempdir()) / "usdirect-duckdb-spill"
    spill.mkdir(parents=True, exist_ok=True)
    con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
    con.execute(f"SET temp_directory = {sql_literal(str(spill))}")
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET enable_progress_bar = false")
    con.execute("SET TimeZone = 'UTC'")


def sql_literal(value: str) -> str:
    """A single-quoted SQL string literal (for file paths and ids that DuckDB cannot bind)."""
    return "'" + value.replace("'", "''") + "'"


def parquet_source(path: str | Path) -> str:
    return f"read_parquet({sql_literal(str(path))})"

"""The in-process DuckDB used to compare, deduplicate and hash inventory rows off the warehouse.

Memory is capped (spilling to a temp folder) so that a 2,000,000-row catalog stays well inside the
worker's 1 GB budget; rows move in record batches, never as one Python list. The caps come from the
settings' ``memory`` section (``configure``); a DuckDB that hits its cap anyway fails with an error
naming the cap and the setting (``explain_memory_error``), never a bare FATAL.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from usdirect.domain.errors import PermanentError

MEMORY_LIMIT = "400MB"
BATCH_ROWS = 131_072


@dataclass(frozen=True)
class MemoryCaps:
    """The caps in force in this task process (settings ``memory``, applied by ``operation_run``)."""

    engine: str = MEMORY_LIMIT
    warehouse: str = MEMORY_LIMIT
    temp_directory: str | None = None


CAPS = MemoryCaps()
_WAREHOUSE_CAPS: dict[str, str] = {}  # conn id -> the cap set on it in this process


def note_warehouse_cap(conn_id: str, limit: str) -> None:
    """Remember a DuckDB warehouse connection's cap, for the out-of-memory explanation."""
    _WAREHOUSE_CAPS[conn_id] = limit


def configure(caps: MemoryCaps) -> None:
    """Use the settings' caps for every engine and DuckDB warehouse connection of this process."""
    global CAPS
    CAPS = caps


class DuckDBMemoryError(PermanentError, MemoryError):
    """DuckDB hit its memory cap: the same data under the same cap fails again."""


def explain_memory_error(exc: BaseException) -> DuckDBMemoryError | None:
    """A DuckDB out-of-memory error (or the invalidated database it leaves) as an error that says
    which cap was hit and which setting to raise; None for any other error."""
    text = str(exc)
    if not any(mark in text for mark in _OOM_MARKS):
        return None
    first = text.strip().splitlines()[0][:300] if text.strip() else type(exc).__name__
    used = ", ".join(f"{conn_id!r} {limit}" for conn_id, limit in _WAREHOUSE_CAPS.items())
    return DuckDBMemoryError(
        f"DuckDB ran out of memory under its cap ({first}). Caps now: inventory engine "
        f"{CAPS.engine} (settings memory.engine_limit); DuckDB warehouse connection "
        f'{used or CAPS.warehouse} (the extra "memory_limit" of the warehouse connection, default '
        f"memory.warehouse_limit); spill folder {spill_folder()}. "
        "Fix: raise the cap of the step that failed within the worker's memory, "
        "or lower operations.get_inventory.partition_rows so that each load and publish task takes "
        "a smaller slice of the catalog; check the spill folder's free disk. The warehouse keeps "
        "its last committed state: clear the task after the change."
    )


_OOM_MARKS = ("Out of Memory", "could not allocate", "failed to pin block", "database has been invalidated")


def spill_folder() -> Path:
    return Path(CAPS.temp_directory or tempfile.gettempdir()) / "usdirect-duckdb-spill"


def open_engine() -> Any:
    """A fresh in-memory DuckDB connection with a memory cap and a spill folder."""
    import duckdb

    con = duckdb.connect(":memory:")
    limit_engine(con)
    return con


def limit_engine(con: Any, memory_limit: str | None = None, spill: bool = True) -> None:
    """Cap memory (``memory_limit``, else the engine cap) and set a spill folder (unless ``spill``
    is False) on a DuckDB connection (also the DuckDB warehouse's, with its own cap)."""
    con.execute(f"SET memory_limit = {sql_literal(memory_limit or CAPS.engine)}")
    if spill:
        folder = spill_folder()
        folder.mkdir(parents=True, exist_ok=True)
        con.execute(f"SET temp_directory = {sql_literal(str(folder))}")
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET enable_progress_bar = false")
    con.execute("SET TimeZone = 'UTC'")


def sql_literal(value: str) -> str:
    """A single-quoted SQL string literal (for file paths and ids that DuckDB cannot bind)."""
    return "'" + value.replace("'", "''") + "'"


def parquet_source(path: str | Path) -> str:
    return f"read_parquet({sql_literal(str(path))})"


def query_batches(con: Any, sql: str) -> Iterator[Any]:
    """The non-empty result batches of a DuckDB query as Arrow tables of at most ``BATCH_ROWS`` rows,
    for ``Warehouse.load_batches``: a large result never sits in memory whole."""
    import pyarrow as pa

    for batch in con.sql(sql).to_arrow_reader(BATCH_ROWS):
        if batch.num_rows:
            yield pa.Table.from_batches([batch])

"""DuckDB memory caps: settings and the warehouse connection's extra decide them, and a load that
hits one fails with an error naming the cap and the setting, leaving the warehouse as it was."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from tests.support.connections import conn_env_var
from tests.support.inventory import inventory, mapped_file, row
from usdirect.domain.errors import PermanentError
from usdirect.engine import base as engine
from usdirect.operators.base import _explained
from usdirect.targets.warehouse import inventory as iw
from usdirect.targets.warehouse.sql import Warehouse, WarehouseConfigError

NOW = dt.datetime(2026, 11, 21, 5, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _default_caps() -> Iterator[None]:
    yield
    engine.configure(engine.MemoryCaps())


def _duckdb_wh(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **extra: str) -> Warehouse:
    conn = {"conn_type": "duckdb", "host": str(tmp_path / "warehouse.duckdb"), "extra": extra}
    monkeypatch.setenv(*conn_env_var("capped_wh", conn))
    return Warehouse.from_conn_id("capped_wh")


def _cap(con: object, wh: Warehouse | None = None) -> str:
    query = "SELECT current_setting('memory_limit')"
    return str(wh.fetchall(con, query)[0][0] if wh else con.execute(query).fetchone()[0])  # type: ignore[attr-defined]


def test_caps_come_from_the_settings_and_the_connection_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    engine.configure(engine.MemoryCaps(engine="123MB", warehouse="77MB", temp_directory=str(tmp_path)))
    con = engine.open_engine()
    try:
        assert _cap(con) == "117.3 MiB"  # DuckDB reports 123 MB in MiB
    finally:
        con.close()
    assert engine.spill_folder() == tmp_path / "usdirect-duckdb-spill"
    plain = _duckdb_wh(monkeypatch, tmp_path)
    with plain.connect() as conn:
        assert _cap(conn, plain) == "73.4 MiB"  # memory.warehouse_limit
    capped = _duckdb_wh(monkeypatch, tmp_path, memory_limit="1GB")
    with capped.connect() as conn:
        assert _cap(conn, capped) == "953.6 MiB"  # the connection's extra wins


def test_an_unusable_cap_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(
        WarehouseConfigError, match=r"'lots' of warehouse connection 'capped_wh'.*memory_limit"
    ):
        _duckdb_wh(monkeypatch, tmp_path, memory_limit="lots")


def test_a_load_over_the_cap_is_explained_and_leaves_the_warehouse_as_it_was(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    wh = _duckdb_wh(monkeypatch, tmp_path)
    small = [row(str(i)) for i in range(10)]
    iw.load_full(wh, "main", "r1", mapped_file(tmp_path, small, "small"), NOW)
    before = inventory(wh)
    large = [row(str(i), title="x" * 200 + str(i)) for i in range(30_000)]
    feed = mapped_file(tmp_path, large, "large")
    tight = _duckdb_wh(monkeypatch, tmp_path, memory_limit="1MB")
    with pytest.raises(duckdb.Error) as raised:
        iw.load_full(tight, "main", "r2", feed, NOW)
    explained = _explained(raised.value)
    assert isinstance(explained, engine.DuckDBMemoryError) and isinstance(explained, PermanentError)
    text = str(explained)
    assert "'capped_wh' 1MB" in text and 'extra "memory_limit" of the warehouse connection' in text
    assert "operations.get_inventory.partition_rows" in text and "memory.engine_limit" in text
    assert explained.__cause__ is raised.value
    assert inventory(wh) == before  # the failed load's transaction left nothing behind


def test_other_errors_are_not_rewritten() -> None:
    assert _explained(duckdb.CatalogException("Table with name x does not exist")) is None
    assert _explained(ValueError("Out of Memory")) is None  # not DuckDB's


def test_an_invalidated_database_is_explained_as_the_memory_cap() -> None:
    """What DuckDB raised on the third 2,000,000-row slice of a 10,000,000-SKU load under 400MB."""
    fatal = duckdb.FatalException(
        "FATAL Error: Failed: database has been invalidated because of a previous fatal error. The "
        'database must be restarted prior to being used again.\nOriginal error: "Failed to flush table '
        "usdirect_inventory during commit: could not allocate block of size 256.0 KiB (381.3 MiB/381.4 MiB "
        'used)"'
    )
    explained = _explained(fatal)
    assert isinstance(explained, engine.DuckDBMemoryError)
    assert str(explained).startswith("DuckDB ran out of memory under its cap (FATAL Error: Failed: database")
    assert "keeps its last committed state" in str(explained)


def test_duckdb_inventory_keeps_no_in_memory_index(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """DuckDB holds an ART index in memory whole (about 380 MB at 5,000,000 SKUs, past the 400 MB
    cap at commit): the inventory table has none, also where an earlier release created one, and
    its keys stay unique through initial, repeated and partial loads."""
    wh = _duckdb_wh(monkeypatch, tmp_path)
    with wh.connect() as conn:
        iw.ensure_inventory_tables(wh, conn)
        wh.execute(
            conn, "CREATE UNIQUE INDEX usdirect_inventory_account_sku_uq ON usdirect_inventory (account, sku)"
        )
    v1 = [row(str(i)) for i in range(50)]
    iw.load_full(wh, "main", "r1", mapped_file(tmp_path, v1, "v1"), NOW)
    # Each load at its own time, as in a real run: the after-load checks tell a load's rows by it.
    later = NOW + dt.timedelta(hours=1)
    iw.load_full(wh, "main", "r2", mapped_file(tmp_path, [*v1[:30], row("new")], "v2"), later)
    iw.load_full(wh, "main", "r3", mapped_file(tmp_path, v1, "v3"), later + dt.timedelta(hours=1))
    with wh.connect() as conn:
        indexes = wh.fetchall(
            conn, "SELECT index_name FROM duckdb_indexes() WHERE table_name = 'usdirect_inventory'"
        )
        keys = wh.fetchall(conn, "SELECT count(*), count(DISTINCT (account, sku)) FROM usdirect_inventory")
    assert indexes == []
    assert keys == [(51, 51)]

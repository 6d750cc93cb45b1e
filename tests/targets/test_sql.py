"""Warehouse round trips on a real DuckDB file and a real Postgres database."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from tests.support.connections import conn_env_var, warehouse_conn
from usdirect.targets.warehouse.sql import Warehouse, WarehouseConfigError

ROWS = pa.table(
    {
        "sku": ["1", "2", "3"],
        "title": ['Grill "Pro", 18"', "Café ñandú", None],
        "cost": pa.array([decimal.Decimal("12.49"), decimal.Decimal("1299.00"), None], pa.decimal128(12, 2)),
        "quantity": pa.array([37, 0, None], pa.int64()),
        "archived": [False, True, None],
        "updated_at": pa.array(
            [dt.datetime(2026, 11, 20, 8, 15, tzinfo=dt.UTC)] * 3, pa.timestamp("us", tz="UTC")
        ),
    }
)
DDL = (
    "CREATE TABLE {t} (sku TEXT PRIMARY KEY, title TEXT, cost DECIMAL(12,2), quantity BIGINT,"
    " archived BOOLEAN, updated_at TIMESTAMPTZ)"
)


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Warehouse:
    monkeypatch.setenv(*conn_env_var("wh_test", warehouse_conn(request.param, request, tmp_path)))
    return Warehouse.from_conn_id("wh_test", schema="usd_test")


def test_load_and_read_back_preserves_values(warehouse: Warehouse) -> None:
    t = warehouse.table("items")
    with warehouse.connect() as conn:
        warehouse.execute(conn, f"DROP TABLE IF EXISTS {t}")
        warehouse.execute(conn, DDL.format(t=t))
        assert warehouse.load_arrow(conn, t, ROWS) == 3
    with warehouse.connect() as conn:
        rows = warehouse.fetchall(conn, f"SELECT sku, title, cost, quantity, archived FROM {t} ORDER BY sku")
        back = warehouse.query_arrow(conn, f"SELECT sku, title FROM {t} ORDER BY sku")
    assert rows == [
        ("1", 'Grill "Pro", 18"', decimal.Decimal("12.49"), 37, False),
        ("2", "Café ñandú", decimal.Decimal("1299.00"), 0, True),
        ("3", None, None, None, None),
    ]
    assert back.column("title").to_pylist() == ['Grill "Pro", 18"', "Café ñandú", None]


def test_failed_transaction_rolls_back(warehouse: Warehouse) -> None:
    t = warehouse.table("rollback_me")
    with warehouse.connect() as conn:
        warehouse.execute(conn, f"DROP TABLE IF EXISTS {t}")
        warehouse.execute(conn, DDL.format(t=t))
    with pytest.raises(RuntimeError), warehouse.connect() as conn:
        warehouse.load_arrow(conn, t, ROWS)
        raise RuntimeError("boom")
    with warehouse.connect() as conn:
        assert warehouse.fetchall(conn, f"SELECT count(*) FROM {t}") == [(0,)]


def test_load_batches_appends_every_batch_in_order_and_skips_empty_ones(warehouse: Warehouse) -> None:
    t = warehouse.table("batched")
    parts = [ROWS.slice(0, 1), ROWS.slice(0, 0), ROWS.slice(1, 2)]
    with warehouse.connect() as conn:
        warehouse.execute(conn, f"DROP TABLE IF EXISTS {t}")
        warehouse.execute(conn, DDL.format(t=t))
        assert warehouse.load_batches(conn, t, iter(parts)) == 3
        assert warehouse.load_batches(conn, t, iter([ROWS.slice(0, 0)])) == 0
    with warehouse.connect() as conn:
        assert warehouse.fetchall(conn, f"SELECT sku, title FROM {t} ORDER BY sku") == [
            ("1", 'Grill "Pro", 18"'),
            ("2", "Café ñandú"),
            ("3", None),
        ]


def test_load_batches_failing_midway_raises_its_error_and_loads_nothing(warehouse: Warehouse) -> None:
    """The batches are made on a thread (Postgres renders CSV ahead of the COPY): an error there
    reaches the caller as it is, and the transaction keeps none of the rows sent before it."""
    t = warehouse.table("batched_fail")

    def batches() -> Iterator[pa.Table]:
        yield ROWS.slice(0, 2)
        raise LookupError("the source broke after one batch")

    with warehouse.connect() as conn:
        warehouse.execute(conn, f"DROP TABLE IF EXISTS {t}")
        warehouse.execute(conn, DDL.format(t=t))
    with pytest.raises(LookupError, match="broke after one batch"), warehouse.connect() as conn:
        warehouse.load_batches(conn, t, batches())
    with warehouse.connect() as conn:
        assert warehouse.fetchall(conn, f"SELECT count(*) FROM {t}") == [(0,)]


def test_rejects_unsupported_connection_type(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(*conn_env_var("wh_bad", {"conn_type": "mysql", "host": "x"}))
    with pytest.raises(WarehouseConfigError, match="'duckdb' or 'postgres'"):
        Warehouse.from_conn_id("wh_bad")


def test_rejects_injected_identifiers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(*conn_env_var("wh_i", {"conn_type": "duckdb", "host": str(tmp_path / "x.duckdb")}))
    with pytest.raises(WarehouseConfigError, match="Invalid SQL identifier"):
        Warehouse.from_conn_id("wh_i", schema='x"; DROP TABLE y; --').table("t")


def test_statements_share_the_transaction(warehouse: Warehouse) -> None:
    """execute/fetchall run inside connect()'s transaction: they see TEMP tables and roll back."""
    p = warehouse.placeholder
    t = warehouse.table("txn_check")
    with warehouse.connect() as conn:
        warehouse.execute(conn, f"DROP TABLE IF EXISTS {t}")
    with pytest.raises(RuntimeError), warehouse.connect() as conn:
        warehouse.execute(conn, f"CREATE TABLE {t} (a INTEGER)")
        warehouse.execute(conn, "CREATE TEMP TABLE scratch (a INTEGER)")
        warehouse.execute(conn, f"INSERT INTO scratch VALUES ({p})", (7,))
        assert warehouse.fetchall(conn, "SELECT a FROM scratch") == [(7,)]
        raise RuntimeError("abort")
    with warehouse.connect() as conn:
        assert warehouse.fetchall(
            conn, f"SELECT count(*) FROM information_schema.tables WHERE table_name = {p}", ("txn_check",)
        ) == [(0,)]


def test_duckdb_waits_for_another_process_lock(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A second writer waits for the DuckDB file lock instead of failing (tasks of two DAGs)."""
    import subprocess
    import sys
    import time

    db = tmp_path / "locked.duckdb"
    monkeypatch.setenv(*conn_env_var("wh_lock", {"conn_type": "duckdb", "host": str(db)}))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(db)!r}); "
            "print('locked', flush=True); time.sleep(2)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    started = time.monotonic()
    wh = Warehouse.from_conn_id("wh_lock")
    with wh.connect() as conn:
        assert wh.fetchall(conn, "SELECT 42") == [(42,)]
    assert time.monotonic() - started > 0.5  # it really waited for the other process
    holder.wait(timeout=10)


@pytest.mark.parametrize(
    ("login", "database", "refusal"),
    [
        ("usdirect_no_such_role", "postgres", 'role "usdirect_no_such_role" does not exist'),
        ("postgres", "usdirect_no_such_db", 'database "usdirect_no_such_db" does not exist'),
    ],
)
def test_postgres_login_refusals_are_permanent_and_name_the_connection(
    monkeypatch: pytest.MonkeyPatch, login: str, database: str, refusal: str
) -> None:
    from usdirect.domain.errors import PermanentError

    conn = {"conn_type": "postgres", "host": "127.0.0.1", "port": 5432, "login": login, "schema": database}
    monkeypatch.setenv(*conn_env_var("wh_refused", conn))
    with pytest.raises(WarehouseConfigError) as err, Warehouse.from_conn_id("wh_refused").connect():
        pass
    assert isinstance(err.value, PermanentError)
    assert str(err.value).startswith(f"Postgres refused warehouse connection 'wh_refused': {refusal}. Fix: ")


def test_unreachable_postgres_stays_retryable(monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg

    conn = {
        "conn_type": "postgres",
        "host": "127.0.0.1",
        "port": 9,
        "login": "postgres",
        "schema": "postgres",
    }
    monkeypatch.setenv(*conn_env_var("wh_down", conn))
    with pytest.raises(psycopg.OperationalError) as err, Warehouse.from_conn_id("wh_down").connect():
        pass
    assert not isinstance(err.value, WarehouseConfigError)

"""Postgres loads in binary COPY format: every value arrives exactly as it would through CSV."""

from __future__ import annotations

import datetime as dt
import decimal
from pathlib import Path

import pyarrow as pa
import pytest

from tests.support.connections import conn_env_var, warehouse_conn
from usdirect.targets.warehouse import sql
from usdirect.targets.warehouse.pg_copy_binary import binary_columns, encode_rows
from usdirect.targets.warehouse.sql import Warehouse

D = decimal.Decimal
UTC = dt.UTC
# Edge values of each type: signs, zero, the largest values the column holds, the smallest
# fractions, dates before Postgres's 2000 epoch, text that CSV must quote, empty text next to NULL.
VALUES = pa.table(
    {
        "id": pa.array(range(9), pa.int64()),
        "txt": ["", None, 'say "hi", then\nleave', "Café ñandú ™", "x" * 5000, "\\N", "NULL", " a ", "😀"],
        "price": pa.array(
            [
                D("0.00"),
                None,
                D("-0.01"),
                D("0.01"),
                D("9999999999.99"),
                D("-9999999999.99"),
                D("12.5"),
                D("10000.00"),
                D("1234.56"),
            ],
            pa.decimal128(12, 2),
        ),
        "weight": pa.array(
            [
                D("0.001"),
                D("-1.5"),
                None,
                D("123456789.999"),
                D("10000"),
                D("0"),
                D("0.010"),
                D("7.07"),
                D("-999999999.999"),
            ],
            pa.decimal128(12, 3),
        ),
        "qty": pa.array([0, -1, None, 2**63 - 1, -(2**63), 100, 7, 1, 42], pa.int64()),
        "flag": [True, False, None, True, False, True, None, False, True],
        "at": pa.array(
            [
                dt.datetime(2026, 11, 20, 8, 15, 30, 123456, tzinfo=UTC),
                None,
                dt.datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
                dt.datetime(2000, 1, 1, tzinfo=UTC),
                dt.datetime(1970, 1, 1, tzinfo=UTC),
                dt.datetime(2100, 6, 1, 12, tzinfo=UTC),
                dt.datetime(1900, 3, 1, tzinfo=UTC),
                dt.datetime(2026, 2, 28, tzinfo=UTC),
                dt.datetime(2026, 3, 1, tzinfo=UTC),
            ],
            pa.timestamp("us", tz="UTC"),
        ),
        "day": pa.array(
            [
                dt.date(2026, 11, 20),
                None,
                dt.date(1999, 12, 31),
                dt.date(2000, 1, 1),
                dt.date(1970, 1, 1),
                dt.date(2400, 2, 29),
                dt.date(1900, 1, 1),
                dt.date(2026, 1, 1),
                dt.date(2000, 2, 29),
            ],
            pa.date32(),
        ),
        "ratio": pa.array(
            [0.0, -1.5, None, 1e300, 3.141592653589793, -0.0, 2.5e-300, 1.0, 7.25], pa.float64()
        ),
    }
)
DDL = (
    "CREATE TABLE {t} (id BIGINT, txt TEXT, price NUMERIC(12,2), weight NUMERIC(12,3), qty BIGINT, "
    "flag BOOLEAN, at TIMESTAMPTZ, day DATE, ratio DOUBLE PRECISION)"
)


@pytest.fixture
def warehouse(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Warehouse:
    monkeypatch.setenv(*conn_env_var("wh_bin", warehouse_conn("postgres", request, tmp_path)))
    return Warehouse.from_conn_id("wh_bin", schema="usd_bin")


def _loaded(warehouse: Warehouse, ddl: str, batches: list[pa.Table]) -> list[tuple]:
    t = warehouse.table("bin_values")
    with warehouse.connect() as conn:
        warehouse.execute(conn, f"DROP TABLE IF EXISTS {t}")
        warehouse.execute(conn, ddl.format(t=t))
        assert warehouse.load_batches(conn, t, iter(batches)) == sum(b.num_rows for b in batches)
    with warehouse.connect() as conn:
        return warehouse.fetchall(conn, f"SELECT * FROM {t} ORDER BY id")


def _expected(table: pa.Table) -> list[tuple]:
    return [tuple(row.values()) for row in table.sort_by("id").to_pylist()]


def test_every_type_and_edge_value_arrives_exactly(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoded: list[int] = []
    monkeypatch.setattr(sql, "encode_rows", lambda part: encoded.append(part.num_rows) or encode_rows(part))
    # Split so that a batch holds NULLs only in some columns, and one part holds a single row.
    batches = [VALUES.slice(0, 4), VALUES.slice(4, 1), VALUES.slice(5)]
    rows = _loaded(warehouse, DDL, batches)
    assert encoded == [4, 1, 4]  # sent as binary, batch by batch
    assert rows == _expected(VALUES)
    assert [r[3] for r in rows][6] == D("0.010") and str(rows[0][2]) == "0.00"  # the scale is kept


def test_the_same_values_through_csv_match_the_binary_load(warehouse: Warehouse) -> None:
    """A column the binary path cannot send as the target's type (here int64 into INTEGER) makes
    the whole load CSV; both paths store the same values."""
    as_csv = _loaded(warehouse, DDL.replace("id BIGINT", "id INTEGER"), [VALUES])
    assert as_csv == _loaded(warehouse, DDL, [VALUES]) == _expected(VALUES)


def test_binary_is_chosen_only_for_exact_type_matches() -> None:
    schema = VALUES.schema
    oids = [20, 25, 1700, 1700, 20, 16, 1184, 1082, 701]
    assert binary_columns(schema, oids)
    assert not binary_columns(schema, [23, *oids[1:]])  # int64 into INTEGER
    assert not binary_columns(schema, [*oids[:6], 1114, *oids[7:]])  # aware timestamp into TIMESTAMP
    assert not binary_columns(schema, oids[:-1])  # another column count
    wide = pa.schema([("n", pa.decimal128(38, 10))])
    assert not binary_columns(wide, [1700])  # beyond what an int64 holds once aligned

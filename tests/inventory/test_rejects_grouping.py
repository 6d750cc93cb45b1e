"""Reject reasons group: duplicate SKUs share one reason text and keep the winning row in
``kept_row_number``, on DuckDB and Postgres, also in a ``usdirect_rejects`` table created before that
column existed; the reject-share alert counts them as one reason."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.support.inventory import row
from usdirect.domain.inventory import conform
from usdirect.engine.dedupe import DUPLICATE_REASON, ROW, dedupe_and_hash
from usdirect.mapping import check_reject_share
from usdirect.mapping.errors import RejectShareExceededError
from usdirect.mapping.rejects import make_rejects
from usdirect.targets.warehouse.audit import write_rejects
from usdirect.targets.warehouse.sql import Warehouse

OLD_REJECTS_DDL = """CREATE TABLE {t} (run_id TEXT NOT NULL, operation TEXT NOT NULL, row_number BIGINT,
    key TEXT, reason TEXT NOT NULL, raw TEXT, recorded_at TIMESTAMPTZ NOT NULL)"""


def _duplicates(tmp_path: Path) -> pa.Table:
    """Three SKUs listed twice with different prices (rows 1-6): the later row of each wins."""
    rows = [row(sku, cost=cost) for sku in ("1", "2", "3") for cost in ("10.00", "12.50")]
    table = conform(pa.Table.from_pylist(rows)).append_column(ROW, pa.array(range(1, 7), pa.int64()))
    pq.write_table(table, tmp_path / "parts.parquet")
    return dedupe_and_hash(tmp_path / "parts.parquet", tmp_path / "out.parquet").duplicates


def test_duplicates_group_under_one_reason_on_both_warehouses(wh: Warehouse, tmp_path: Path) -> None:
    with wh.connect() as conn:
        wh.execute(conn, OLD_REJECTS_DDL.format(t=wh.table("usdirect_rejects")))  # as deployed before
    mapping = make_rejects(
        "inventory", [9], ["USD-9"], ["quantity: not a valid int (source 'quantity')"], [{}]
    )
    with wh.connect() as conn:
        write_rejects(wh, conn, "run-1", _duplicates(tmp_path).select(mapping.column_names))
        write_rejects(wh, conn, "run-2", _duplicates(tmp_path))
        write_rejects(wh, conn, "run-3", mapping)  # rejects without the column: stored as NULL
    with wh.connect() as conn:
        t = wh.table("usdirect_rejects")
        grouped = wh.fetchall(
            conn, f"SELECT reason, count(*) FROM {t} WHERE run_id = 'run-2' GROUP BY reason"
        )
        kept = wh.fetchall(
            conn, f"SELECT run_id, row_number, kept_row_number FROM {t} ORDER BY run_id, row_number"
        )
    assert grouped == [(DUPLICATE_REASON, 3)]
    assert "row 2" not in DUPLICATE_REASON
    assert kept == [
        ("run-1", 1, None),
        ("run-1", 3, None),
        ("run-1", 5, None),
        ("run-2", 1, 2),
        ("run-2", 3, 4),
        ("run-2", 5, 6),
        ("run-3", 9, None),
    ]


def test_reject_share_alert_counts_duplicates_as_one_reason(tmp_path: Path) -> None:
    with pytest.raises(RejectShareExceededError) as caught:
        check_reject_share(6, _duplicates(tmp_path), 0.05)
    assert f"Top reasons: 3x {DUPLICATE_REASON}." in str(caught.value)

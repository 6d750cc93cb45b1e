"""The after-load checks of the shipment and invoice upserts, on a real DuckDB file and a real
Postgres database: a shipment in transit without tracking and an invoice whose total disagrees with
its lines unflagged fail the load with the check's name; nothing of that batch is committed."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.support.order_tables import (
    invoice_lines_table,
    invoice_table,
    shipment_items_table,
    shipments_table,
)
from usdirect.targets.warehouse import invoices as wh_invoices
from usdirect.targets.warehouse import order_tables as ot
from usdirect.targets.warehouse import shipments as wh_shipments
from usdirect.targets.warehouse.checks import QualityCheckFailed
from usdirect.targets.warehouse.sql import Warehouse

T0 = dt.datetime(2026, 11, 21, 10, tzinfo=dt.UTC)


def _shipment(shipment_id: str, status: str, tracking: str | None) -> dict[str, object]:
    return {
        "shipment_id": shipment_id,
        "po_number": "PO-1",
        "tracking_number": tracking,
        "status": status,
        "supplier_status": status.lower().replace(" ", "_"),
        "updated_at": T0,
    }


def _upsert_shipments(wh: Warehouse, rows: list[dict[str, object]]) -> None:
    items = shipment_items_table([(str(r["shipment_id"]), 1, "10234", 1) for r in rows])
    with wh.connect() as conn:
        wh_shipments.upsert_shipments(wh, conn, shipments_table(rows), items, "run")


def _ids(wh: Warehouse, table: str, key: str) -> list[str]:
    with wh.connect() as conn:
        return [r[0] for r in wh.fetchall(conn, f"SELECT {key} FROM {wh.table(table)} ORDER BY {key}")]


def test_a_shipped_shipment_without_tracking_fails_the_batch(warehouse: Warehouse) -> None:
    _upsert_shipments(warehouse, [_shipment("SH-1", "Label Created", None)])  # not shipped yet: fine
    bad = [_shipment("SH-2", "In Transit", "1Z1"), _shipment("SH-3", "Delivered", " ")]
    with pytest.raises(QualityCheckFailed) as exc:
        _upsert_shipments(warehouse, bad)
    assert [f.check.name for f in exc.value.failures] == ["tracking_when_shipped"]
    message = str(exc.value)
    assert "usdirect_shipments" in message
    assert "tracking_when_shipped: observed 1, expected = 0. Fix: " in message
    assert _ids(warehouse, ot.SHIPMENTS, "shipment_id") == ["SH-1"]
    assert _ids(warehouse, ot.SHIPMENT_ITEMS, "shipment_id") == ["SH-1"]


@pytest.mark.parametrize(("total", "passes"), [("35.94", True), ("35.95", False)])
def test_an_unflagged_invoice_total_must_match_its_lines_within_a_cent(
    warehouse: Warehouse, total: str, passes: bool
) -> None:
    # lines 24.98 + 5.00, shipping 5.95: the contract's total is 35.93
    lines = invoice_lines_table("INV-1", [(1, "10234", 2, "12.49"), (2, "10500", 1, "5.00")])
    with warehouse.connect() as conn:
        no_lines = invoice_lines_table("INV-0", [])
        wh_invoices.upsert_invoices(
            warehouse, conn, invoice_table("INV-0", "PO-0", "Paid", "5.95"), no_lines, "r0"
        )

    def load() -> None:
        with warehouse.connect() as conn:
            wh_invoices.upsert_invoices(
                warehouse, conn, invoice_table("INV-1", "PO-1", "Unpaid", total), lines, "r1"
            )

    if passes:
        load()
    else:
        with pytest.raises(QualityCheckFailed, match=r"total_matches_lines: observed 1, expected = 0"):
            load()
    expected = ["INV-0", "INV-1"] if passes else ["INV-0"]
    assert _ids(warehouse, ot.INVOICES, "invoice_number") == expected
    # Flagged by Get Invoice's own check, the same invoice is kept (it is reported, not dropped).
    with warehouse.connect() as conn:
        flagged = invoice_table(
            "INV-1", "PO-1", "Unpaid", "99.00", "lines 29.98 + ... = 35.93 but total is 99.00"
        )
        wh_invoices.upsert_invoices(warehouse, conn, flagged, lines, "r2")
    assert _ids(warehouse, ot.INVOICES, "invoice_number") == ["INV-0", "INV-1"]

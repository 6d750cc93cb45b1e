"""Warehouse tables, ledger and set-based upserts on a real DuckDB file and a real Postgres DB."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from tests.support.order_tables import (
    invoice_lines_table,
    invoice_table,
    reconciliation_rows,
    shipment_items_table,
    shipments_table,
)
from tests.support.orders import make_fr
from usdirect.domain.fulfillment import LedgerState
from usdirect.targets.warehouse import demo
from usdirect.targets.warehouse import fulfillment_requests as frq
from usdirect.targets.warehouse import invoices as wh_invoices
from usdirect.targets.warehouse import order_tables as ot
from usdirect.targets.warehouse import shipments as wh_shipments
from usdirect.targets.warehouse.sql import UpsertCounts, Warehouse

UTC = dt.UTC
D = Decimal


def test_import_is_additive_and_never_resets_a_known_po(warehouse: Warehouse) -> None:
    with warehouse.connect() as conn:
        assert frq.import_fulfillment_requests(warehouse, conn, [make_fr(1, "PO-1"), make_fr(2, "PO-2")]) == 2
    frq.mark_submitting(warehouse, "PO-1")
    with warehouse.connect() as conn:
        changed = make_fr(1, "PO-1", orderNumber="CHANGED")
        assert frq.import_fulfillment_requests(warehouse, conn, [changed, make_fr(3, "PO-3")]) == 1
        entries = {e.po_number: e for e in frq.open_fulfillment_requests(warehouse, conn)}
    assert sorted(entries) == ["PO-1", "PO-2", "PO-3"]
    assert (entries["PO-1"].status, entries["PO-1"].attempts) == ("submitting", 1)
    assert entries["PO-1"].fr["orderNumber"] == "SHOP-1"
    assert dt.datetime.fromisoformat(entries["PO-1"].fr["insertedAt"]) == dt.datetime(
        2026, 11, 20, 8, tzinfo=UTC
    )
    assert [i["sku"] for i in entries["PO-2"].fr["items"]] == ["USD-10234", "USD-10500"]
    assert entries["PO-2"].fr["items"][0]["cost"] == 12.49


def test_ledger_records_outcomes_and_filters(warehouse: Warehouse) -> None:
    with warehouse.connect() as conn:
        frq.import_fulfillment_requests(warehouse, conn, [make_fr(i, f"PO-{i}") for i in range(1, 5)])
    assert frq.mark_submitting(warehouse, "PO-1") == 1
    assert frq.mark_submitting(warehouse, "PO-1") == 2
    sent = dt.datetime(2026, 11, 20, 9, tzinfo=UTC)
    frq.record_submitted(
        warehouse,
        "PO-1",
        "UD-1",
        "partially_accepted",
        sent,
        [(1, "accepted", None), (2, "rejected", "out_of_stock")],
    )
    frq.record_problem(
        warehouse, "PO-2", LedgerState.NEEDS_ATTENTION, "ship_to.state: AK is outside the lower 48"
    )
    with warehouse.connect() as conn:
        open_pos = [e.po_number for e in frq.open_fulfillment_requests(warehouse, conn)]
        limited = [e.po_number for e in frq.open_fulfillment_requests(warehouse, conn, limit=1)]
        chosen = [
            e.po_number for e in frq.open_fulfillment_requests(warehouse, conn, po_numbers=["PO-1", "PO-2"])
        ]
        row = warehouse.fetchall(
            conn,
            f"SELECT status, supplier_order_id, order_status, attempts, submitted_at, last_error "
            f"FROM {warehouse.table(ot.FR)} WHERE po_number = 'PO-1'",
        )[0]
        lines = warehouse.fetchall(
            conn,
            f"SELECT line_number, line_status, line_reason FROM {warehouse.table(ot.FR_LINES)} "
            "WHERE po_number = 'PO-1' ORDER BY line_number",
        )
    assert open_pos == ["PO-3", "PO-4"]
    assert limited == ["PO-3"]
    assert chosen == ["PO-2"]  # submitted POs are never offered again, even when named
    assert row[:4] == ("submitted", "UD-1", "partially_accepted", 2)
    assert row[4] == sent and row[5] is None
    assert lines == [(1, "accepted", None), (2, "rejected", "out_of_stock")]
    recon = reconciliation_rows(warehouse)
    assert recon["PO-1"]["ordered_qty"] == 3 and recon["PO-1"]["accepted_qty"] == 2
    assert recon["PO-1"]["expected_cost"] == D("24.98")
    assert recon["PO-1"]["problem"] == "rejected by US Direct: line 2 (USD-10500) out_of_stock"
    assert recon["PO-2"]["state"] == "needs_attention"
    assert recon["PO-2"]["problem"] == "ship_to.state: AK is outside the lower 48"
    assert recon["PO-3"]["state"] == "pending" and recon["PO-3"]["problem"] is None


def test_shipments_upsert_in_place_and_derive_fulfilment(warehouse: Warehouse) -> None:
    t0 = dt.datetime(2026, 11, 21, 10, tzinfo=UTC)
    with warehouse.connect() as conn:
        frq.import_fulfillment_requests(warehouse, conn, [make_fr(1, "PO-1"), make_fr(2, "PO-2")])
    for po in ("PO-1", "PO-2"):
        frq.record_submitted(
            warehouse, po, f"UD-{po}", "received", t0, [(1, "accepted", None), (2, "accepted", None)]
        )
    first = shipments_table(
        [
            {
                "shipment_id": "SH-1",
                "po_number": "PO-1",
                "tracking_number": "T1",
                "status": "Label Created",
                "updated_at": t0,
            },
            {
                "shipment_id": "SH-2",
                "po_number": "PO-2",
                "tracking_number": "T2",
                "status": "In Transit",
                "updated_at": t0,
            },
        ]
    )
    with warehouse.connect() as conn:
        counts = wh_shipments.upsert_shipments(
            warehouse,
            conn,
            first,
            shipment_items_table([("SH-1", 1, "10234", 2), ("SH-2", 1, "10234", 2)]),
            "run-1",
        )
    assert counts == UpsertCounts(seen=2, new=2, changed=0)
    assert reconciliation_rows(warehouse)["PO-1"]["fulfillment_state"] == "partially_shipped"
    # SH-1 moves on (twice in one batch: newest wins), an older copy of SH-2 must not regress it,
    # and PO-1's second line ships separately.
    second = shipments_table(
        [
            {
                "shipment_id": "SH-1",
                "po_number": "PO-1",
                "tracking_number": "T1",
                "status": "In Transit",
                "updated_at": t0 + dt.timedelta(hours=1),
            },
            {
                "shipment_id": "SH-1",
                "po_number": "PO-1",
                "tracking_number": "T1",
                "status": "Delivered",
                "updated_at": t0 + dt.timedelta(hours=5),
            },
            {
                "shipment_id": "SH-2",
                "po_number": "PO-2",
                "tracking_number": "T2",
                "status": "Label Created",
                "updated_at": t0 - dt.timedelta(hours=1),
            },
            {
                "shipment_id": "SH-3",
                "po_number": "PO-1",
                "tracking_number": "T3",
                "status": "In Transit",
                "updated_at": t0 + dt.timedelta(hours=2),
            },
        ]
    )
    items = shipment_items_table([("SH-1", 1, "10234", 2), ("SH-2", 1, "10234", 2), ("SH-3", 1, "10500", 1)])
    with warehouse.connect() as conn:
        counts = wh_shipments.upsert_shipments(warehouse, conn, second, items, "run-2")
    with warehouse.connect() as conn:
        rows = warehouse.fetchall(
            conn,
            f"SELECT shipment_id, status, run_id FROM {warehouse.table(ot.SHIPMENTS)} ORDER BY shipment_id",
        )
        n_items = warehouse.fetchall(conn, f"SELECT count(*) FROM {warehouse.table(ot.SHIPMENT_ITEMS)}")[0][0]
        stragglers = wh_shipments.open_pos_not_fully_shipped(warehouse, conn, t0 + dt.timedelta(days=1))
    assert counts.seen == 3 and counts.new == 1
    assert rows == [
        ("SH-1", "Delivered", "run-2"),
        ("SH-2", "In Transit", "run-1"),
        ("SH-3", "In Transit", "run-2"),
    ]
    assert n_items == 3
    # Every PO has a shipment, but PO-2 has fewer units shipped than accepted: still looked up.
    assert stragglers == ["PO-2"]
    recon = reconciliation_rows(warehouse)
    assert (recon["PO-1"]["shipped_qty"], recon["PO-1"]["state"]) == (3, "shipped")
    assert (recon["PO-2"]["shipped_qty"], recon["PO-2"]["state"]) == (2, "partially_shipped")


def test_invoices_upsert_checks_and_reconcile(warehouse: Warehouse) -> None:
    t0 = dt.datetime(2026, 11, 21, 10, tzinfo=UTC)
    with warehouse.connect() as conn:
        frq.import_fulfillment_requests(warehouse, conn, [make_fr(1, "PO-1"), make_fr(2, "PO-2")])
    for po in ("PO-1", "PO-2"):
        frq.record_submitted(
            warehouse, po, f"UD-{po}", "received", t0, [(1, "accepted", None), (2, "accepted", None)]
        )
    with warehouse.connect() as conn:
        wh_shipments.upsert_shipments(
            warehouse,
            conn,
            shipments_table(
                [
                    {
                        "shipment_id": "SH-1",
                        "po_number": "PO-1",
                        "tracking_number": "T1",
                        "status": "Delivered",
                        "updated_at": t0,
                    }
                ]
            ),
            shipment_items_table([("SH-1", 1, "10234", 2), ("SH-1", 2, "10500", 1)]),
            "run-1",
        )
        assert wh_invoices.pos_awaiting_invoice(warehouse, conn) == [("PO-1", dt.date(2026, 11, 21))]
        assert wh_invoices.shipped_quantities(warehouse, conn, ["PO-1"]) == {
            ("PO-1", "10234"): 2,
            ("PO-1", "10500"): 1,
        }
        lines = invoice_lines_table("INV-1", [(1, "10234", 2, "12.49"), (2, "10500", 1, "5.00")])
        c1 = wh_invoices.upsert_invoices(
            warehouse, conn, invoice_table("INV-1", "PO-1", "Unpaid", "35.93"), lines, "run-1"
        )
    assert c1 == UpsertCounts(1, 1, 0)
    assert reconciliation_rows(warehouse)["PO-1"]["state"] == "invoiced"
    with warehouse.connect() as conn:
        c2 = wh_invoices.upsert_invoices(
            warehouse, conn, invoice_table("INV-1", "PO-1", "Paid", "35.93"), lines, "run-2"
        )
        wh_invoices.record_invoice_checks(
            warehouse, conn, ["PO-2"], {"PO-2": "no invoice 31 days after shipping"}
        )
        assert wh_invoices.pos_awaiting_invoice(warehouse, conn) == []
    assert c2 == UpsertCounts(1, 0, 1)
    recon = reconciliation_rows(warehouse)
    assert recon["PO-1"] | {} == {
        "po_number": "PO-1",
        "ordered_qty": 3,
        "accepted_qty": 3,
        "shipped_qty": 3,
        "invoiced_qty": 3,
        "expected_cost": D("29.98"),
        "invoiced_total": D("35.93"),
        "state": "paid",
        "fulfillment_state": "shipped",
        "problem": None,
    }
    assert recon["PO-2"]["problem"] == "no invoice 31 days after shipping"
    # A mismatching invoice is kept, flagged with its figures, and shows in the view.
    with warehouse.connect() as conn:
        bad_lines = invoice_lines_table("INV-1", [(1, "10234", 3, "12.49"), (2, "10500", 1, "5.00")])
        wh_invoices.upsert_invoices(
            warehouse,
            conn,
            invoice_table("INV-1", "PO-1", "Paid", "40.00", "lines 42.47 + shipping 5.95 ≠ total 40.00"),
            bad_lines,
            "run-3",
        )
    problem = reconciliation_rows(warehouse)["PO-1"]["problem"]
    assert "invoiced 4 units but only 3 shipped" in problem
    assert "lines 42.47 + shipping 5.95 ≠ total 40.00" in problem
    counts = demo.reconciliation_counts(warehouse)
    assert counts == {"awaiting_shipment": 1, "paid": 1, "with_problem": 2}

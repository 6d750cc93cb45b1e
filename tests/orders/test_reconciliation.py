"""usdirect_po_reconciliation after a full cycle on the sandbox (send, ship, invoice, pay), every
row and column compared with what US Direct itself reports, on DuckDB and Postgres."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from tests.support.order_flow import get_invoices, get_shipments
from tests.support.orders import FAST_CLIENT, FAST_SANDBOX, usdirect_frs, use_sandbox
from usdirect.domain.fulfillment import LedgerState
from usdirect.hooks.flxpoint import FlxpointHook
from usdirect.hooks.usdirect import UsDirectHook
from usdirect.pipelines import orders
from usdirect.targets.warehouse import fulfillment_requests as frq
from usdirect.targets.warehouse import invoices as wh_invoices
from usdirect.targets.warehouse import order_tables as ot
from usdirect.targets.warehouse import shipments as wh_shipments
from usdirect.targets.warehouse.sql import Warehouse

COLUMNS = (
    "po_number",
    "request_status",
    "order_status",
    "supplier_order_id",
    "ordered_qty",
    "accepted_qty",
    "shipped_qty",
    "invoiced_qty",
    "shipments",
    "expected_cost",
    "invoiced_product_cost",
    "invoiced_shipping",
    "invoiced_fees",
    "invoiced_tax",
    "invoiced_total",
    "invoice_status",
    "state",
    "fulfillment_state",
    "problem",
)


def _expected(po: str, fr: dict[str, Any], use: UsDirectHook, attention: dict[str, str]) -> dict[str, Any]:
    """The view's row for ``po`` as the sandbox's own records say it should be."""
    ordered = sum(int(i["quantity"]) for i in fr["items"])
    if po in attention:  # never created at US Direct: terminal, nothing accepted, shipped or invoiced
        assert use.get_order(po) is None
        return dict(
            zip(
                COLUMNS,
                (po, "needs_attention", None, None, ordered, 0, 0, 0, 0, Decimal("0.00"))
                + (None,) * 6
                + ("needs_attention", "needs_attention", attention[po]),
                strict=True,
            )
        )
    order = use.get_order(po)
    assert order is not None
    kept = [ln for ln in order["lines"] if ln["status"] != "rejected"]
    rejected = [ln for ln in order["lines"] if ln["status"] == "rejected"]
    ships = use.get_order_shipments(po)
    invoice = use.get_invoice(po)
    cancelled = order["status"] == "cancelled"
    problem = (
        "rejected by US Direct: "
        + ", ".join(f"line {ln['line_number']} (USD-{ln['item_number']}) {ln['reason']}" for ln in rejected)
        if rejected
        else None
    )
    money = (
        (None,) * 5
        if invoice is None
        else (
            sum(Decimal(ln["amount"]) for ln in invoice["lines"]),
            Decimal(invoice["shipping"]),
            Decimal(invoice["fees"]),
            Decimal(invoice["tax"]),
            Decimal(invoice["total"]),
        )
    )
    return dict(
        zip(
            COLUMNS,
            (
                po,
                "submitted",
                order["status"],
                order["order_id"],
                ordered,
                sum(int(ln["quantity"]) for ln in kept),
                sum(int(i["quantity"]) for s in ships for i in s["items"]),
                sum(int(ln["quantity"]) for ln in invoice["lines"]) if invoice else 0,
                len(ships),
                sum((Decimal(ln["unit_cost"]) * int(ln["quantity"]) for ln in kept), Decimal("0.00")),
                *money,
                invoice["status"].title() if invoice else None,
                "cancelled" if cancelled else invoice["status"],
                "cancelled" if cancelled else "shipped",
                problem,
            ),
            strict=True,
        )
    )


def test_every_row_of_the_view_matches_the_sandbox_after_a_full_cycle(
    sandbox_factory: Any,
    warehouse: Warehouse,
    orders_template: Any,
    shipments_template: Any,
    invoices_template: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sb = sandbox_factory(**FAST_SANDBOX)
    use_sandbox(sb, monkeypatch, **FAST_CLIENT)
    wh = warehouse
    p = wh.placeholder
    frs = {fr["fulfillmentRequestNumber"]: fr for fr in usdirect_frs(sb)}
    with wh.connect() as conn:
        frq.import_fulfillment_requests(wh, conn, list(frs.values()))
    report = orders.send_orders(
        orders_template, UsDirectHook(), orders.SendOptions(), wh=wh, platform=FlxpointHook()
    )
    attention = {
        o.po_number: o.message for o in report.outcomes if o.kind == orders.OutcomeKind.NEEDS_ATTENTION
    }
    held = {o.po_number for o in report.outcomes if o.order_status == "on_hold"}
    assert len(attention) == 5 and held
    since = sb.clock_now() - dt.timedelta(hours=1)
    for n, days in enumerate((1, 3, 4)):  # ship, ship the rest and invoice, pay
        sb.advance_clock(days=days)
        get_shipments(wh, shipments_template, since, f"s{n}")
        get_invoices(wh, invoices_template, sb.clock_now().date(), f"i{n}")

    use = UsDirectHook()
    with wh.connect() as conn:
        rows = wh.fetchall(conn, f"SELECT {', '.join(COLUMNS)} FROM {wh.table(ot.RECONCILIATION)}")
        types = dict(
            wh.fetchall(
                conn,
                f"SELECT column_name, data_type FROM information_schema.columns WHERE table_name = {p} "
                f"AND table_schema = COALESCE({p}, current_schema())",
                (ot.RECONCILIATION, wh.schema),
            )
        )
    got = {r[0]: dict(zip(COLUMNS, r, strict=True)) for r in rows}
    assert sorted(got) == sorted(frs)
    for po, fr in frs.items():
        assert got[po] == _expected(po, fr, use, attention), po
    states = {row["state"] for row in got.values()}
    assert {"needs_attention", "cancelled", "paid"} <= states
    assert {got[po]["order_status"] for po in held} == {"shipped"}  # no longer on hold
    for col in ("ordered_qty", "accepted_qty", "shipped_qty", "invoiced_qty", "shipments"):
        assert types[col].lower() == "bigint", (col, types[col])
    assert set(types) == set(ot.RECONCILIATION_COLUMNS)


def test_terminal_states_current_status_and_costs_at_the_orders_cost(warehouse: Warehouse) -> None:
    """Cancelled and needs-attention POs are terminal in both state columns; a shipped order is no
    longer reported on hold; invoice lines are checked against the order's own cost, so a partial
    invoice at that cost is no problem and a line priced differently is named with its figures."""
    from tests.support.order_tables import (
        invoice_lines_table,
        invoice_table,
        reconciliation_rows,
        shipment_items_table,
        shipments_table,
    )
    from tests.support.orders import make_fr

    t0 = dt.datetime(2026, 11, 21, 10, tzinfo=dt.UTC)
    wh = warehouse
    with wh.connect() as conn:
        frq.import_fulfillment_requests(wh, conn, [make_fr(n, f"PO-{n}") for n in range(1, 5)])
    accepted = [(1, "accepted", None), (2, "accepted", None)]
    frq.record_submitted(wh, "PO-1", "UD-1", "on_hold", t0, accepted)
    frq.record_submitted(
        wh, "PO-2", "UD-2", "cancelled", t0, [(n, "rejected", "out_of_stock") for n in (1, 2)]
    )
    frq.record_problem(wh, "PO-3", LedgerState.NEEDS_ATTENTION, "ship_to.state: AK is outside the lower 48")
    frq.record_submitted(wh, "PO-4", "UD-4", "received", t0, accepted)
    recon = reconciliation_rows(wh)
    assert recon["PO-1"]["problem"] == "on hold at US Direct (order over 30 lb)"
    assert (recon["PO-2"]["state"], recon["PO-2"]["fulfillment_state"]) == ("cancelled", "cancelled")
    assert (recon["PO-3"]["state"], recon["PO-3"]["fulfillment_state"]) == ("needs_attention",) * 2

    ship = [{"shipment_id": "SH-1", "po_number": "PO-1", "tracking_number": "T1", "status": "In Transit"}]
    ship += [{"shipment_id": "SH-4", "po_number": "PO-4", "tracking_number": "T4", "status": "In Transit"}]
    with wh.connect() as conn:
        wh_shipments.upsert_shipments(
            wh,
            conn,
            shipments_table([{**s, "updated_at": t0} for s in ship]),
            shipment_items_table([("SH-1", 1, "10234", 2), ("SH-1", 2, "10500", 1), ("SH-4", 1, "10234", 2)]),
            "r1",
        )
        # PO-1 invoiced in full, line 2 above the order's cost (5.00); PO-4 invoiced for what shipped.
        wh_invoices.upsert_invoices(
            wh,
            conn,
            invoice_table("INV-1", "PO-1", "Unpaid", "36.93"),
            invoice_lines_table("INV-1", [(1, "10234", 2, "12.49"), (2, "10500", 1, "6.00")]),
            "r1",
        )
        wh_invoices.upsert_invoices(
            wh,
            conn,
            invoice_table("INV-4", "PO-4", "Unpaid", "30.93"),
            invoice_lines_table("INV-4", [(1, "10234", 2, "12.49")]),
            "r1",
        )
        split = wh.fetchall(
            conn,
            "SELECT po_number, expected_cost, invoiced_product_cost, invoiced_shipping, invoiced_fees, "
            f"invoiced_tax, invoiced_total, order_status FROM {wh.table(ot.RECONCILIATION)} "
            "WHERE po_number IN ('PO-1', 'PO-4') ORDER BY po_number",
        )
    recon = reconciliation_rows(wh)
    D = Decimal
    assert split == [
        ("PO-1", D("29.98"), D("30.98"), D("5.95"), D("0.00"), D("0.00"), D("36.93"), "shipped"),
        ("PO-4", D("29.98"), D("24.98"), D("5.95"), D("0.00"), D("0.00"), D("30.93"), "partially_shipped"),
    ]
    assert recon["PO-1"]["problem"] == (
        "INV-1 line 2: 1 x 5.00 = 5.00 at the order's cost, invoiced 6.00"
    )  # shipped: no longer "on hold"
    assert recon["PO-4"]["problem"] is None
    assert recon["PO-4"]["fulfillment_state"] == "partially_shipped"


def test_a_po_cancelled_after_processing_is_terminal_and_no_longer_a_straggler(warehouse: Warehouse) -> None:
    from tests.support.order_tables import reconciliation_rows, shipment_items_table, shipments_table
    from tests.support.orders import make_fr

    t0 = dt.datetime(2026, 11, 21, 10, tzinfo=dt.UTC)
    wh = warehouse
    with wh.connect() as conn:
        frq.import_fulfillment_requests(wh, conn, [make_fr(1, "PO-1")])
    frq.record_submitted(wh, "PO-1", "UD-1", "processing", t0, [(1, "accepted", None), (2, "accepted", None)])
    later = t0 + dt.timedelta(days=4)
    with wh.connect() as conn:
        assert wh_shipments.open_pos_not_fully_shipped(wh, conn, later) == ["PO-1"]
        frq.record_order_status(wh, conn, {"PO-1": "cancelled"})  # what the straggler lookup read
        # A shipment record arriving afterwards does not turn a cancelled order back into shipped.
        wh_shipments.upsert_shipments(
            wh,
            conn,
            shipments_table(
                [
                    {
                        "shipment_id": "SH-1",
                        "po_number": "PO-1",
                        "tracking_number": "T1",
                        "status": "Returned",
                        "updated_at": t0,
                    }
                ]
            ),
            shipment_items_table([("SH-1", 1, "10234", 2)]),
            "r1",
        )
        assert wh_shipments.open_pos_not_fully_shipped(wh, conn, later) == []
    row = reconciliation_rows(wh)["PO-1"]
    assert (row["state"], row["fulfillment_state"]) == ("cancelled", "cancelled")

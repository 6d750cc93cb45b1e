"""The shipments and invoices steps run as their DAGs run them, and both targets compared field
by field with what US Direct reports (shared by the lifecycle and window tests)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sandbox.runner import SandboxInfo
from usdirect.hooks.flxpoint import FlxpointHook
from usdirect.hooks.usdirect import UsDirectHook
from usdirect.pipelines import invoices, shipments
from usdirect.targets.warehouse import order_tables as ot
from usdirect.targets.warehouse.sql import Warehouse

SHIPMENT_STATUS = {
    "label_created": "Label Created",
    "in_transit": "In Transit",
    "delivered": "Delivered",
    "exception": "Exception",
    "returned": "Returned",
}
INVOICE_STATUS = {"unpaid": "Unpaid", "paid": "Paid", "credited": "Credited"}


def get_shipments(wh: Warehouse | None, template: Any, since: dt.datetime, run_id: str) -> dict[str, Any]:
    batch, _ = shipments.fetch_shipments(
        UsDirectHook(),
        template,
        since,
        shipments.straggler_pos(wh, dt.datetime.now(dt.UTC), 72) if wh else [],
    )
    if wh is not None:
        shipments.load_warehouse(wh, batch, run_id)
    return shipments.deliver_platform(FlxpointHook(), batch, wh)


def get_invoices(wh: Warehouse | None, template: Any, today: dt.date, run_id: str, pos: tuple = ()) -> Any:
    wanted = invoices.candidates(wh, pos)
    shipped = invoices.shipped_quantities(wh, [c.po_number for c in wanted])
    fetched = invoices.fetch_invoices(UsDirectHook(), template, wanted, today, 30, shipped)
    if wh is not None:
        invoices.load_warehouse(wh, fetched, run_id, [c.po_number for c in wanted])
    delivered = invoices.deliver_platform(FlxpointHook(), fetched.batch, wh)
    return fetched, delivered


def warehouse_rows(wh: Warehouse, sql: str) -> list[tuple]:
    with wh.connect() as conn:
        return wh.fetchall(conn, sql)


def check_warehouse(wh: Warehouse, ship_truth: dict, inv_truth: dict) -> None:
    want_ship = sorted(
        (
            s["shipment_id"],
            s["po_number"],
            s["carrier"],
            s["shipping_code"],
            s["tracking_number"],
            SHIPMENT_STATUS[s["status"]],
            s["status"],
            dt.date.fromisoformat(s["ship_date"]),
        )
        for ships in ship_truth.values()
        for s in ships
    )
    got_ship = warehouse_rows(
        wh,
        f"SELECT shipment_id, po_number, carrier, shipping_code, tracking_number, status, supplier_status, "
        f"ship_date FROM {wh.table(ot.SHIPMENTS)} ORDER BY shipment_id",
    )
    assert got_ship == want_ship
    want_items = sorted(
        (s["shipment_id"], i["line_number"], i["item_number"], f"USD-{i['item_number']}", i["quantity"])
        for ships in ship_truth.values()
        for s in ships
        for i in s["items"]
    )
    got_items = warehouse_rows(
        wh,
        f"SELECT shipment_id, line_number, item_number, sku, quantity FROM {wh.table(ot.SHIPMENT_ITEMS)} "
        "ORDER BY shipment_id, line_number",
    )
    assert got_items == want_items
    want_inv = sorted(
        (
            i["invoice_number"],
            i["po_number"],
            dt.date.fromisoformat(i["invoice_date"]),
            INVOICE_STATUS[i["status"]],
            i["currency"],
            Decimal(i["total"]),
            Decimal(i["shipping"]),
            Decimal(i["fees"]),
            Decimal(i["tax"]),
            None,
        )
        for i in inv_truth.values()
        if i
    )
    got_inv = warehouse_rows(
        wh,
        f"SELECT invoice_number, po_number, invoice_date, status, currency, total, shipping, fees, tax, "
        f"check_problem FROM {wh.table(ot.INVOICES)} ORDER BY invoice_number",
    )
    assert got_inv == want_inv
    want_lines = sorted(
        (
            i["invoice_number"],
            ln["line_number"],
            ln["item_number"],
            ln["quantity"],
            Decimal(ln["unit_cost"]),
            Decimal(ln["amount"]),
        )
        for i in inv_truth.values()
        if i
        for ln in i["lines"]
    )
    got_lines = warehouse_rows(
        wh,
        f"SELECT invoice_number, line_number, item_number, quantity, unit_cost, amount "
        f"FROM {wh.table(ot.INVOICE_LINES)} ORDER BY invoice_number, line_number",
    )
    assert got_lines == want_lines


def check_platform(sb: SandboxInfo, ship_truth: dict, inv_truth: dict) -> None:
    platform_ships = {s["shipment"]["trackingNumber"]: s for s in sb.platform("shipments")}
    all_ships = [s for ships in ship_truth.values() for s in ships]
    assert sorted(platform_ships) == sorted(s["tracking_number"] for s in all_ships)
    for s in all_ships:
        got = platform_ships[s["tracking_number"]]
        assert got["fulfillmentRequestNumber"] == s["po_number"]
        assert got["shipment"]["status"] == SHIPMENT_STATUS[s["status"]]
        assert got["shipment"]["carrier"] == s["carrier"]
        assert got["shipment"]["shippedAt"].startswith(s["ship_date"])
        assert sorted((i["sku"], i["quantity"]) for i in got["shipmentItems"]) == sorted(
            (f"USD-{i['item_number']}", i["quantity"]) for i in s["items"]
        )
    platform_inv = {i["invoiceNumber"]: i for i in sb.platform("source-invoices")}
    all_inv = [i for i in inv_truth.values() if i]
    assert sorted(platform_inv) == sorted(i["invoice_number"] for i in all_inv)
    for inv in all_inv:
        got = platform_inv[inv["invoice_number"]]
        assert got["fulfillmentRequestNumber"] == inv["po_number"]
        assert got["invoiceStatus"] == INVOICE_STATUS[inv["status"]]
        assert Decimal(str(got["totalCost"])) == Decimal(inv["total"])
        assert Decimal(str(got["totalShippingCost"])) == Decimal(inv["shipping"])
        assert Decimal(str(got["totalFeeCost"])) == Decimal(inv["fees"])
        assert Decimal(str(got["totalProductCost"])) == sum(Decimal(ln["amount"]) for ln in inv["lines"])
        assert sorted(
            (i["sku"], i["quantity"], Decimal(str(i["cost"]))) for i in got["invoiceItems"]
        ) == sorted(
            (f"USD-{ln['item_number']}", ln["quantity"], Decimal(ln["amount"])) for ln in inv["lines"]
        )

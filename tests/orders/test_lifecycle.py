"""Orders through shipping, invoicing and payment on the sandbox clock; both targets checked
field by field against what US Direct reports, then reconciled."""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from typing import Any

import pytest

from sandbox.faults import FaultKind
from sandbox.runner import SandboxInfo
from tests.support.orders import FAST_CLIENT, FAST_SANDBOX, use_sandbox
from usdirect.hooks.flxpoint import FlxpointHook
from usdirect.hooks.usdirect import UsDirectHook
from usdirect.pipelines import invoices, orders, shipments
from usdirect.targets.warehouse import orders as ow
from usdirect.targets.warehouse.sql import Warehouse

log = logging.getLogger(__name__)

SHIPMENT_STATUS = {
    "label_created": "Label Created",
    "in_transit": "In Transit",
    "delivered": "Delivered",
    "exception": "Exception",
    "returned": "Returned",
}
INVOICE_STATUS = {"unpaid": "Unpaid", "paid": "Paid", "credited": "Credited"}


def _get_shipments(wh: Warehouse | None, template: Any, since: dt.datetime, run_id: str) -> dict[str, Any]:
    batch, _ = shipments.fetch_shipments(
        UsDirectHook(),
        template,
        since,
        shipments.straggler_pos(wh, dt.datetime.now(dt.UTC), 72) if wh else [],
    )
    if wh is not None:
        shipments.load_warehouse(wh, batch, run_id)
    return shipments.deliver_platform(FlxpointHook(), batch, wh)


def _get_invoices(wh: Warehouse | None, template: Any, today: dt.date, run_id: str, pos: tuple = ()) -> Any:
    wanted = invoices.candidates(wh, pos)
    shipped = invoices.shipped_quantities(wh, [c.po_number for c in wanted])
    fetched = invoices.fetch_invoices(UsDirectHook(), template, wanted, today, 30, shipped)
    if wh is not None:
        invoices.load_warehouse(wh, fetched, run_id, [c.po_number for c in wanted])
    delivered = invoices.deliver_platform(FlxpointHook(), fetched.batch, wh)
    return fetched, delivered


def _truth(sb: SandboxInfo, pos: list[str]) -> tuple[dict[str, list[dict]], dict[str, dict | None]]:
    use = UsDirectHook()
    return {po: use.get_order_shipments(po) for po in pos}, {po: use.get_invoice(po) for po in pos}


def _rows(wh: Warehouse, sql: str) -> list[tuple]:
    with wh.connect() as conn:
        return wh.fetchall(conn, sql)


def _check_warehouse(wh: Warehouse, ship_truth: dict, inv_truth: dict) -> None:
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
    got_ship = _rows(
        wh,
        f"SELECT shipment_id, po_number, carrier, shipping_code, tracking_number, status, supplier_status, "
        f"ship_date FROM {wh.table(ow.SHIPMENTS)} ORDER BY shipment_id",
    )
    assert got_ship == want_ship
    want_items = sorted(
        (s["shipment_id"], i["line_number"], i["item_number"], f"USD-{i['item_number']}", i["quantity"])
        for ships in ship_truth.values()
        for s in ships
        for i in s["items"]
    )
    got_items = _rows(
        wh,
        f"SELECT shipment_id, line_number, item_number, sku, quantity FROM {wh.table(ow.SHIPMENT_ITEMS)} "
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
    got_inv = _rows(
        wh,
        f"SELECT invoice_number, po_number, invoice_date, status, currency, total, shipping, fees, tax, "
        f"check_problem FROM {wh.table(ow.INVOICES)} ORDER BY invoice_number",
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
    got_lines = _rows(
        wh,
        f"SELECT invoice_number, line_number, item_number, quantity, unit_cost, amount "
        f"FROM {wh.table(ow.INVOICE_LINES)} ORDER BY invoice_number, line_number",
    )
    assert got_lines == want_lines


def _check_platform(sb: SandboxInfo, ship_truth: dict, inv_truth: dict) -> None:
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


def test_orders_ship_invoice_and_reconcile_on_both_targets(
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
    report = orders.send_orders(
        orders_template, UsDirectHook(), orders.SendOptions(), wh=wh, platform=FlxpointHook()
    )
    assert report.unfinished == []
    sent = sorted(o.po_number for o in report.outcomes if o.kind == orders.SUBMITTED)
    since = sb.clock_now() - dt.timedelta(hours=1)

    sb.advance_clock(days=1)  # first shipments appear (label created)
    first = _get_shipments(wh, shipments_template, since, "r1")
    assert first["created"] > 0 and first["errors"] == []
    fetched, _ = _get_invoices(wh, invoices_template, sb.clock_now().date(), "r1")
    assert fetched.not_yet and not fetched.overdue  # two-parcel orders are not invoiced yet

    sb.advance_clock(days=3)  # second parcels, statuses move on, invoices issued
    second = _get_shipments(wh, shipments_template, since, "r2")
    assert second["status_updated"] > 0 and second["errors"] == []
    fetched, delivered = _get_invoices(wh, invoices_template, sb.clock_now().date(), "r2")
    assert delivered["created"] > 0 and delivered["errors"] == []
    moved = delivered.get("unchanged", 0) + delivered.get("status_updated", 0)
    assert delivered["created"] + moved == fetched.counts["invoices"]

    sb.advance_clock(days=4)  # delivered, paid
    _get_shipments(wh, shipments_template, since, "r3")
    _get_invoices(wh, invoices_template, sb.clock_now().date(), "r3")
    ship_truth, inv_truth = _truth(sb, sent)
    _check_warehouse(wh, ship_truth, inv_truth)
    _check_platform(sb, ship_truth, inv_truth)

    # Running again changes nothing anywhere.
    before = sb.stats("flxpoint")["requests"]
    again = _get_shipments(wh, shipments_template, since, "r4")
    assert set(again) == {"unchanged", "errors"} and again["errors"] == []
    _, delivered = _get_invoices(wh, invoices_template, sb.clock_now().date(), "r4")
    assert delivered == {"errors": []}  # every invoice is paid: none asked for again
    after = sb.stats("flxpoint")["requests"]
    assert {k: v for k, v in after.items() if k.startswith(("POST", "PATCH"))} == {
        k: v for k, v in before.items() if k.startswith(("POST", "PATCH"))
    }
    _check_warehouse(wh, ship_truth, inv_truth)

    recon = {
        r[0]: r[1:]
        for r in _rows(
            wh,
            f"SELECT po_number, state, ordered_qty, accepted_qty, shipped_qty, invoiced_qty, expected_cost, "
            f"invoiced_total, problem FROM {wh.table(ow.RECONCILIATION)}",
        )
    }
    for po in sent:
        state, ordered, accepted, shipped, invoiced, expected, total, problem = recon[po]
        inv = inv_truth[po]
        if inv is None:  # cancelled by US Direct: nothing accepted, nothing shipped
            assert (state, accepted, shipped, invoiced) == ("cancelled", 0, 0, 0) and "rejected" in problem
            continue
        assert state == inv["status"]  # paid, or credited
        assert shipped == accepted == invoiced == sum(ln["quantity"] for ln in inv["lines"])
        assert total == Decimal(inv["total"])
        assert expected == sum(Decimal(ln["amount"]) for ln in inv["lines"])
        if accepted == ordered:
            assert problem is None or "on hold" in problem, (po, problem)
    counts = ow.reconciliation_counts(wh)
    assert counts["paid"] + counts.get("credited", 0) == sum(1 for i in inv_truth.values() if i)
    assert counts["needs_attention"] == 5


# Every kind, `slow` last.
FAULT_KINDS = (*(k for k in FaultKind if k is not FaultKind.SLOW), FaultKind.SLOW)
FLOW_ENDPOINTS = (
    "POST /v1/orders",
    "GET /v1/orders/*",
    "GET /v1/shipments",
    "GET /v1/invoices/*",
    "GET /fulfillment-requests",
    "PATCH /fulfillment-requests/*",
    "POST /shipments",
    "PATCH /shipments/*",
    "POST /source-invoices",
    "PATCH /source-invoices/*",
)


def _flow_faults(probability: float) -> list[str]:
    """Each kind once on each write, then ``probability`` of every request fails, of every kind."""
    each = round(probability / len(FAULT_KINDS), 4)
    slow = " delay=3"
    once = [
        f"{ep} {kind} times=1 skip={i}" + (slow if kind is FaultKind.SLOW else "")
        for ep in ("POST /v1/orders", "POST /shipments", "POST /source-invoices")
        for i, kind in enumerate(FAULT_KINDS)
    ]
    return once + [
        f"{ep} {kind} probability={each}" + (slow if kind is FaultKind.SLOW else "")
        for ep in FLOW_ENDPOINTS
        for kind in FAULT_KINDS
    ]


def _retried(step: Any, done: Any, tries: int = 8) -> Any:
    """Run a step as Airflow would: a failed try is retried; the step is idempotent."""
    for _ in range(tries):
        try:
            result = step()
        except Exception as exc:
            log.warning("step failed and is retried: %s", exc)
            continue
        if done(result):
            return result
    raise AssertionError(f"step did not succeed in {tries} tries")


def test_full_flow_under_faults_of_every_kind_ends_right_with_one_creation_per_po(
    sandbox_factory: Any,
    duck_wh: Warehouse,
    orders_template: Any,
    shipments_template: Any,
    invoices_template: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sb = sandbox_factory(faults=_flow_faults(0.2), **FAST_SANDBOX)
    use_sandbox(sb, monkeypatch, timeout=1, **FAST_CLIENT)
    wh = duck_wh
    since = sb.clock_now() - dt.timedelta(hours=1)
    _retried(
        lambda: orders.send_orders(
            orders_template, UsDirectHook(), orders.SendOptions(), wh=wh, platform=FlxpointHook()
        ),
        lambda report: not report.unfinished,
    )
    for n, days in enumerate((1, 3, 4)):
        sb.advance_clock(days=days)
        _retried(
            lambda n=n: _get_shipments(wh, shipments_template, since, f"s{n}"), lambda r: not r["errors"]
        )
        _retried(
            lambda n=n: _get_invoices(wh, invoices_template, sb.clock_now().date(), f"i{n}"),
            lambda r: not r[1]["errors"],
        )
    stats = {**sb.stats()["requests"], **sb.stats("flxpoint")["requests"]}
    fired = {k.split(":", 1)[1] for by in stats.values() for k in by if k.startswith("fault:")}
    assert fired == set(FAULT_KINDS)
    sb.clear_faults()
    sent = sorted(sb.creation_counts())
    assert len(sent) == 21 and {c["created"] for c in sb.creation_counts().values()} == {1}
    ship_truth, inv_truth = _truth(sb, sent)
    _check_warehouse(wh, ship_truth, inv_truth)
    _check_platform(sb, ship_truth, inv_truth)
    frs = sb.platform("fulfillment-requests")
    assert sorted(fr["status"] for fr in frs).count("Processed") == 20
    assert ow.reconciliation_counts(wh)["needs_attention"] == 5

"""Stragglers, platform errors, invoice checks and overdue invoices."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tests.support.orders import FAST_CLIENT, FAST_SANDBOX, make_fr, usdirect_frs, use_sandbox
from usdirect.hooks.flxpoint import FlxpointHook
from usdirect.hooks.usdirect import UsDirectHook
from usdirect.pipelines import invoices, orders, shipments
from usdirect.targets.platform.orders import processed_requests
from usdirect.targets.warehouse import fulfillment_requests as frq
from usdirect.targets.warehouse import order_tables as ot
from usdirect.targets.warehouse.sql import Warehouse


def test_open_pos_without_shipments_are_looked_up_one_by_one(
    sandbox_factory: Any,
    duck_wh: Warehouse,
    orders_template: Any,
    shipments_template: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sb = sandbox_factory(**FAST_SANDBOX)
    use_sandbox(sb, monkeypatch, **FAST_CLIENT)
    with duck_wh.connect() as conn:
        frq.import_fulfillment_requests(duck_wh, conn, usdirect_frs(sb))
    orders.send_orders(orders_template, UsDirectHook(), orders.SendOptions(), wh=duck_wh)
    sb.advance_clock(days=3)
    stragglers = shipments.straggler_pos(duck_wh, sb.clock_now(), 48)
    assert len(stragglers) == 20  # every PO US Direct did not cancel
    # A window after every change: only the per-PO lookups can find the shipments.
    batch, counts = shipments.fetch_shipments(
        UsDirectHook(), shipments_template, sb.clock_now() + dt.timedelta(hours=1), stragglers
    )
    truth = {s["shipment_id"] for po in stragglers for s in UsDirectHook().get_order_shipments(po)}
    assert counts.changed == 0 and counts.stragglers_checked == 20
    assert counts.stragglers_found == len(truth) == batch.parents.num_rows
    loaded = shipments.load_warehouse(duck_wh, batch, "run-s")
    assert loaded.new == len(truth)
    assert shipments.straggler_pos(duck_wh, sb.clock_now(), 48) == []


def test_a_shipment_for_an_unknown_request_is_an_error_with_its_reason_and_retried_later(
    sandbox_factory: Any, duck_wh: Warehouse, shipments_template: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb = sandbox_factory(**FAST_SANDBOX)
    use_sandbox(sb, monkeypatch, **FAST_CLIENT)
    record = {
        "shipment_id": "SH-1",
        "po_number": "NOT-ON-PLATFORM-1",
        "carrier": "UPS",
        "shipping_code": "UPS-GND",
        "tracking_number": "1ZNOTONPLATFORM0001",
        "status": "in_transit",
        "ship_date": "2026-11-21",
        "updated_at": "2026-11-21T19:02:11Z",
        "items": [{"line_number": 1, "item_number": "10234", "quantity": 2}],
    }
    batch = shipments.map_batch(
        shipments_template, [record], shipments.SHIPMENT_FIELDS, shipments.ITEM_FIELDS
    )
    shipments.load_warehouse(duck_wh, batch, "run-u")
    result = shipments.deliver_platform(FlxpointHook(), batch, duck_wh)
    assert result["error"] == 1
    assert "NOT-ON-PLATFORM-1" in result["errors"][0] and "no fulfillment request" in result["errors"][0]
    with duck_wh.connect() as conn:
        row = duck_wh.fetchall(
            conn, f"SELECT platform_shipment_id, platform_error FROM {duck_wh.table(ot.SHIPMENTS)}"
        )[0]
    assert row[0] is None and "NOT-ON-PLATFORM-1" in row[1]
    # Once the request exists, the next delivery sends the failed shipment although nothing changed.
    fr = {k: v for k, v in make_fr(77, "NOT-ON-PLATFORM-1").items() if k != "id"}  # the platform numbers it
    sb.seed_fulfillment_requests(requests=[fr])
    nothing_new = shipments.map_batch(
        shipments_template, [], shipments.SHIPMENT_FIELDS, shipments.ITEM_FIELDS
    )
    assert shipments.deliver_platform(FlxpointHook(), nothing_new, duck_wh) == {"created": 1, "errors": []}
    with duck_wh.connect() as conn:
        row = duck_wh.fetchall(
            conn, f"SELECT platform_shipment_id, platform_error FROM {duck_wh.table(ot.SHIPMENTS)}"
        )[0]
    assert row[0] is not None and row[1] is None
    (delivered,) = sb.platform("shipments")
    assert delivered["shipment"]["trackingNumber"] == "1ZNOTONPLATFORM0001"
    assert delivered["shipmentItems"] == [{"sku": "USD-10234", "quantity": 2}]


def _invoice(**overrides: Any) -> dict[str, Any]:
    return {
        "invoice_number": "INV-1",
        "po_number": "PO-1",
        "invoice_date": "2026-11-22",
        "status": "unpaid",
        "currency": "USD",
        "lines": [
            {
                "line_number": 1,
                "item_number": "10234",
                "quantity": 2,
                "unit_cost": "12.49",
                "amount": "24.98",
            },
            {"line_number": 2, "item_number": "10500", "quantity": 1, "unit_cost": "5.00", "amount": "5.00"},
        ],
        "shipping": "5.95",
        "fees": "0.00",
        "tax": "0.00",
        "total": "35.93",
    } | overrides


def test_invoices_that_do_not_add_up_are_kept_and_flagged_with_figures(invoices_template: Any) -> None:
    good = _invoice()
    bad_total = _invoice(invoice_number="INV-2", po_number="PO-2", total="40.00")
    bad_line = _invoice(invoice_number="INV-3", po_number="PO-3")
    bad_line["lines"] = [dict(bad_line["lines"][0], quantity=3, amount="24.98"), bad_line["lines"][1]]
    batch = shipments.map_batch(
        invoices_template, [good, bad_total, bad_line], invoices.INVOICE_FIELDS[:-1], invoices.LINE_FIELDS
    )
    shipped = {(po, "10234"): 2 for po in ("PO-1", "PO-2", "PO-3")} | {
        (po, "10500"): 1 for po in ("PO-1", "PO-2", "PO-3")
    }
    problems = invoices.check_invoices(batch, shipped)
    assert set(problems) == {"INV-2", "INV-3"}
    assert problems["INV-2"] == (
        "lines 29.98 + shipping 5.95 + fees 0.00 + tax 0.00 = 35.93 but total is 40.00"
    )
    assert problems["INV-3"] == (
        "line 1: 3 x 12.49 = 37.47 but amount is 24.98; item 10234: invoiced 3 but shipped 2"
    )
    assert invoices.check_invoices(batch, None).keys() == {"INV-2", "INV-3"}


def test_missing_invoices_wait_then_are_reported_overdue(
    sandbox: Any, duck_wh: Warehouse, invoices_template: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_sandbox(sandbox, monkeypatch)
    today = dt.date(2026, 12, 30)
    with duck_wh.connect() as conn:
        frq.import_fulfillment_requests(duck_wh, conn, [make_fr(1, "OLD-1"), make_fr(2, "NEW-1")])
    wanted = [invoices.Candidate("OLD-1", today - dt.timedelta(days=31)), invoices.Candidate("NEW-1", today)]
    fetched = invoices.fetch_invoices(UsDirectHook(), invoices_template, wanted, today, 30)
    assert fetched.not_yet == ["OLD-1", "NEW-1"]
    assert list(fetched.overdue) == ["OLD-1"] and "31 days" in fetched.overdue["OLD-1"]
    assert fetched.counts == {
        "invoices": 0,
        "not_invoiced_yet": 2,
        "overdue": 1,
        "mismatched": 0,
        "rejected": 0,
    }
    invoices.load_warehouse(duck_wh, fetched, "run-i", ["OLD-1", "NEW-1"])
    with duck_wh.connect() as conn:
        problems = dict(
            duck_wh.fetchall(conn, f"SELECT po_number, problem FROM {duck_wh.table(ot.RECONCILIATION)}")
        )
    assert "no invoice 31 days after the first shipment" in problems["OLD-1"]
    assert problems["NEW-1"] is None
    # Nothing has shipped in this warehouse: only POs named in the Param are asked for.
    assert invoices.candidates(duck_wh, ("NEW-1",)) == [invoices.Candidate("NEW-1")]


def test_platform_only_deliveries_are_idempotent_without_a_warehouse(
    sandbox_factory: Any,
    orders_template: Any,
    shipments_template: Any,
    invoices_template: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sb = sandbox_factory(**FAST_SANDBOX)
    use_sandbox(sb, monkeypatch, **FAST_CLIENT)
    start = sb.clock_now()
    orders.send_orders(orders_template, UsDirectHook(), orders.SendOptions(), platform=FlxpointHook())
    sb.advance_clock(days=8)
    batch, _ = shipments.fetch_shipments(UsDirectHook(), shipments_template, start - dt.timedelta(hours=1))
    first = shipments.deliver_platform(FlxpointHook(), batch, None)
    again = shipments.deliver_platform(FlxpointHook(), batch, None)
    assert first == {"created": batch.parents.num_rows, "errors": []}
    assert again == {"status_updated": batch.parents.num_rows, "errors": []}  # 409 -> PATCH, no duplicate
    assert len(sb.platform("shipments")) == batch.parents.num_rows

    wanted = [
        invoices.Candidate(po, inserted)
        for po, inserted in processed_requests(FlxpointHook(), start.date() - dt.timedelta(days=1))
    ]
    assert len(wanted) == 20  # processed requests only: flagged and other-source ones are not asked for
    fetched = invoices.fetch_invoices(UsDirectHook(), invoices_template, wanted, sb.clock_now().date(), 30)
    assert fetched.counts["invoices"] == 20 and fetched.mismatched == {}
    delivered = invoices.deliver_platform(FlxpointHook(), fetched.batch, None)
    assert delivered == {"created": 20, "errors": []}
    statuses = {i["invoiceNumber"]: i["invoiceStatus"] for i in sb.platform("source-invoices")}
    truth = {c.po_number: UsDirectHook().get_invoice(c.po_number) for c in wanted}
    assert statuses == {i["invoice_number"]: i["status"].title() for i in truth.values()}

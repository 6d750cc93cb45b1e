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
from tests.support.order_flow import (
    check_platform,
    check_warehouse,
    get_invoices,
    get_shipments,
    warehouse_rows,
)
from tests.support.orders import FAST_CLIENT, FAST_SANDBOX, use_sandbox
from usdirect.hooks.flxpoint import FlxpointHook
from usdirect.hooks.usdirect import UsDirectHook
from usdirect.pipelines import orders
from usdirect.targets.warehouse import demo
from usdirect.targets.warehouse import order_tables as ot
from usdirect.targets.warehouse.sql import Warehouse

log = logging.getLogger(__name__)


def _truth(sb: SandboxInfo, pos: list[str]) -> tuple[dict[str, list[dict]], dict[str, dict | None]]:
    use = UsDirectHook()
    return {po: use.get_order_shipments(po) for po in pos}, {po: use.get_invoice(po) for po in pos}


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
    sent = sorted(o.po_number for o in report.outcomes if o.kind == orders.OutcomeKind.SUBMITTED)
    since = sb.clock_now() - dt.timedelta(hours=1)

    sb.advance_clock(days=1)  # first shipments appear (label created)
    first = get_shipments(wh, shipments_template, since, "r1")
    assert first["created"] > 0 and first["errors"] == []
    fetched, _ = get_invoices(wh, invoices_template, sb.clock_now().date(), "r1")
    assert fetched.not_yet and not fetched.overdue  # two-parcel orders are not invoiced yet

    sb.advance_clock(days=3)  # second parcels, statuses move on, invoices issued
    second = get_shipments(wh, shipments_template, since, "r2")
    assert second["status_updated"] > 0 and second["errors"] == []
    fetched, delivered = get_invoices(wh, invoices_template, sb.clock_now().date(), "r2")
    assert delivered["created"] > 0 and delivered["errors"] == []
    moved = delivered.get("unchanged", 0) + delivered.get("status_updated", 0)
    assert delivered["created"] + moved == fetched.counts["invoices"]

    sb.advance_clock(days=4)  # delivered, paid
    get_shipments(wh, shipments_template, since, "r3")
    get_invoices(wh, invoices_template, sb.clock_now().date(), "r3")
    ship_truth, inv_truth = _truth(sb, sent)
    check_warehouse(wh, ship_truth, inv_truth)
    check_platform(sb, ship_truth, inv_truth)

    # Running again changes nothing anywhere.
    before = sb.stats("flxpoint")["requests"]
    again = get_shipments(wh, shipments_template, since, "r4")
    assert set(again) == {"unchanged", "errors"} and again["errors"] == []
    _, delivered = get_invoices(wh, invoices_template, sb.clock_now().date(), "r4")
    assert delivered == {"errors": []}  # every invoice is paid: none asked for again
    after = sb.stats("flxpoint")["requests"]
    assert {k: v for k, v in after.items() if k.startswith(("POST", "PATCH"))} == {
        k: v for k, v in before.items() if k.startswith(("POST", "PATCH"))
    }
    check_warehouse(wh, ship_truth, inv_truth)

    recon = {
        r[0]: r[1:]
        for r in warehouse_rows(
            wh,
            f"SELECT po_number, state, ordered_qty, accepted_qty, shipped_qty, invoiced_qty, expected_cost, "
            f"invoiced_total, problem FROM {wh.table(ot.RECONCILIATION)}",
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
    counts = demo.reconciliation_counts(wh)
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
        _retried(lambda n=n: get_shipments(wh, shipments_template, since, f"s{n}"), lambda r: not r["errors"])
        _retried(
            lambda n=n: get_invoices(wh, invoices_template, sb.clock_now().date(), f"i{n}"),
            lambda r: not r[1]["errors"],
        )
    stats = {**sb.stats()["requests"], **sb.stats("flxpoint")["requests"]}
    fired = {k.split(":", 1)[1] for by in stats.values() for k in by if k.startswith("fault:")}
    assert fired == set(FAULT_KINDS)
    sb.clear_faults()
    sent = sorted(sb.creation_counts())
    assert len(sent) == 21 and {c["created"] for c in sb.creation_counts().values()} == {1}
    ship_truth, inv_truth = _truth(sb, sent)
    check_warehouse(wh, ship_truth, inv_truth)
    check_platform(sb, ship_truth, inv_truth)
    frs = sb.platform("fulfillment-requests")
    assert sorted(fr["status"] for fr in frs).count("Processed") == 20
    assert demo.reconciliation_counts(wh)["needs_attention"] == 5

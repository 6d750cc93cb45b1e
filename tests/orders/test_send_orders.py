"""Send Orders against the sandbox: records field by field, bad orders, exactly once under faults."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sandbox.faults import FaultKind
from sandbox.runner import SandboxInfo
from tests.support.orders import (
    FAST_CLIENT,
    FAST_SANDBOX,
    ORDERS_TEMPLATE,
    defects,
    usdirect_frs,
    use_sandbox,
)
from usdirect.domain.order_rules import SHIPPING_CODES
from usdirect.hooks.flxpoint import FlxpointHook
from usdirect.hooks.usdirect import UsDirectHook
from usdirect.pipelines import orders
from usdirect.targets.warehouse import demo
from usdirect.targets.warehouse import order_tables as ot
from usdirect.targets.warehouse.sql import Warehouse

log = logging.getLogger(__name__)

# What each seeded defect must produce: (field named in the message, regex for the problem).
EXPECTED_PROBLEM = {
    "po_box": ("ship_to.address1", "PO Box"),
    "alaska": ("ship_to.state", "lower 48"),
    "missing_postal_code": ("ship_to.postal_code", "required|missing"),
    "unknown_shipping_code": ("shipping_code", "DHLX"),
    "zero_quantity": ("quantity", "below 1|at least 1"),
}
# Every kind, `slow` last.
ALL_FAULT_KINDS = (*(k for k in FaultKind if k is not FaultKind.SLOW), FaultKind.SLOW)


def _seed(wh: Warehouse, sb: SandboxInfo) -> list[dict[str, Any]]:
    assert demo.seed_demo_requests(wh, sb.platform("fulfillment-requests")) == 26
    return usdirect_frs(sb)


def _fr_rows(wh: Warehouse) -> dict[str, dict[str, Any]]:
    cols = [
        "po_number",
        "status",
        "supplier_order_id",
        "order_status",
        "attempts",
        "submitted_at",
        "last_error",
    ]
    with wh.connect() as conn:
        rows = wh.fetchall(conn, f"SELECT {', '.join(cols)} FROM {wh.table(ot.FR)}")
        lines = wh.fetchall(
            conn,
            f"SELECT po_number, line_number, line_status, line_reason FROM {wh.table(ot.FR_LINES)} "
            "ORDER BY po_number, line_number",
        )
    out = {r[0]: dict(zip(cols, r, strict=True)) | {"lines": []} for r in rows}
    for po, n, status, reason in lines:
        out[po]["lines"].append((n, status, reason))
    return out


def _supplier_orders(sb: SandboxInfo, pos: list[str]) -> dict[str, dict[str, Any]]:
    """US Direct's own view of each PO (None when it was never created)."""
    use = UsDirectHook()
    return {po: use.get_order(po) for po in pos}


def _expected_lines(order: dict[str, Any]) -> list[tuple[int, str, str | None]]:
    return [
        (ln["line_number"], "rejected" if ln["status"] == "rejected" else "accepted", ln.get("reason"))
        for ln in order["lines"]
    ]


def _assert_warehouse_matches_supplier(wh: Warehouse, sb: SandboxInfo) -> dict[str, dict[str, Any]]:
    rows = _fr_rows(wh)
    bad = defects(sb)
    truth = _supplier_orders(sb, sorted(rows))
    counts = sb.creation_counts()
    for po, row in rows.items():
        defect = bad.get(po)
        if defect in EXPECTED_PROBLEM:
            field, words = EXPECTED_PROBLEM[defect]
            assert row["status"] == "needs_attention", po
            assert field in row["last_error"] and re.search(words, row["last_error"]), (po, row["last_error"])
            assert truth[po] is None and po not in counts, po
            continue
        order = truth[po]
        assert order is not None, po
        assert row["status"] == "submitted"
        assert row["supplier_order_id"] == order["order_id"]
        assert row["order_status"] == order["status"]
        assert row["lines"] == _expected_lines(order)
        assert row["submitted_at"] is not None and row["attempts"] >= 1
        assert counts[po]["created"] == 1, (po, counts[po])
        if defect == "unknown_sku":
            assert "unknown_item" in row["last_error"]
    return rows


def test_warehouse_orders_are_sent_once_and_recorded_field_by_field(
    sandbox_factory: Any, duck_wh: Warehouse, orders_template: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At the real rate limit (5/s) with 4 threads: no 429 (Postgres: lifecycle and kill tests)."""
    sb = sandbox_factory()
    use_sandbox(sb, monkeypatch)
    _seed(wh := duck_wh, sb)
    options = orders.SendOptions(max_workers=4)
    report = orders.send_orders(orders_template, UsDirectHook(), options, wh=wh)
    assert report.unfinished == []
    assert (
        report.count(orders.OutcomeKind.SUBMITTED) == 21
        and report.count(orders.OutcomeKind.NEEDS_ATTENTION) == 5
    )
    rows = _assert_warehouse_matches_supplier(wh, sb)
    assert all(row["attempts"] == 1 for row in rows.values() if row["status"] == "submitted")
    assert {c["submitted"] for c in sb.creation_counts().values()} == {1}
    stats = sb.stats()
    assert not any("429" in by_status for by_status in stats["requests"].values()), stats
    # A second run finds nothing to send and sends nothing.
    again = orders.send_orders(orders_template, UsDirectHook(), options, wh=wh)
    assert again.outcomes == []
    assert sb.stats()["requests"]["POST /v1/orders"] == stats["requests"]["POST /v1/orders"]


def test_dry_run_and_po_numbers_param(
    sandbox_factory: Any, duckdb_path: Path, orders_template: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb = sandbox_factory()
    use_sandbox(sb, monkeypatch)
    monkeypatch.setenv("AIRFLOW_CONN_WH_DRY", json.dumps({"conn_type": "duckdb", "host": str(duckdb_path)}))
    wh = Warehouse.from_conn_id("wh_dry")
    frs = _seed(wh, sb)
    dry = orders.send_orders(orders_template, UsDirectHook(), orders.SendOptions(dry_run=True), wh=wh)
    assert dry.count(orders.OutcomeKind.DRY_RUN) == 21 and dry.count(orders.OutcomeKind.NEEDS_ATTENTION) == 5
    first = frs[0]
    payload = next(o.payload for o in dry.outcomes if o.po_number == first["fulfillmentRequestNumber"])
    assert payload["shipping_code"] in SHIPPING_CODES
    assert payload["ship_to"]["postal_code"] == first["shippingAddress"]["postal"]
    assert [ln["item_number"] for ln in payload["lines"]] == [
        i["sku"].removeprefix("USD-") for i in first["items"]
    ]
    assert sb.creation_counts() == {}
    assert {r["status"] for r in _fr_rows(wh).values()} == {"pending"}
    one = first["fulfillmentRequestNumber"]
    report = orders.send_orders(orders_template, UsDirectHook(), orders.SendOptions(po_numbers=(one,)), wh=wh)
    assert [o.po_number for o in report.outcomes] == [one]
    assert list(sb.creation_counts()) == [one]
    capped = orders.send_orders(orders_template, UsDirectHook(), orders.SendOptions(max_orders=3), wh=wh)
    assert len(capped.outcomes) == 3 and len(sb.creation_counts()) == 4


def test_platform_requests_are_processed_or_flagged(
    sandbox_factory: Any, orders_template: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb = sandbox_factory(**FAST_SANDBOX)
    use_sandbox(sb, monkeypatch, **FAST_CLIENT)
    report = orders.send_orders(
        orders_template, UsDirectHook(), orders.SendOptions(max_workers=4), platform=FlxpointHook()
    )
    assert report.unfinished == []
    bad = defects(sb)
    frs = {fr["fulfillmentRequestNumber"]: fr for fr in sb.platform("fulfillment-requests")}
    truth = _supplier_orders(sb, sorted(frs))
    for po, fr in frs.items():
        if fr["sourceName"] != "US Direct":
            assert fr["status"] == "Unprocessed" and truth[po] is None
        elif bad.get(po) in EXPECTED_PROBLEM:
            field, words = EXPECTED_PROBLEM[bad[po]]
            assert fr["status"] == "Additional Info Required", po
            message = json.dumps(fr)
            assert field in message and re.search(words, message), (po, fr)
            assert truth[po] is None
        elif truth[po]["status"] == "cancelled":
            assert fr["status"] == "Failed" and "unknown_item" in json.dumps(fr), fr
        else:
            assert fr["status"] == "Processed", fr
            assert fr.get("supplierOrderId") == truth[po]["order_id"], fr
    assert {c["created"] for c in sb.creation_counts().values()} == {1}


def _fault_rules(probability: float) -> list[str]:
    """Every fault kind once on order submission, then about ``probability`` of the requests of
    every endpoint Send Orders touches fail, spread over every kind."""
    each = round(probability / len(ALL_FAULT_KINDS), 4)
    once = [
        f"POST /v1/orders {kind} times=1 skip={2 * i}" + (" delay=3" if kind is FaultKind.SLOW else "")
        for i, kind in enumerate(ALL_FAULT_KINDS)
    ]
    endpoints = (
        "POST /v1/orders",
        "GET /v1/orders/*",
        "GET /fulfillment-requests",
        "PATCH /fulfillment-requests/*",
    )
    return once + [
        f"{ep} {kind} probability={each}" + (" delay=3" if kind is FaultKind.SLOW else "")
        for ep in endpoints
        for kind in ALL_FAULT_KINDS
    ]


def _end_state(sb: SandboxInfo, wh: Warehouse) -> dict[str, Any]:
    """Everything but the (creation-order dependent) supplier order ids."""
    rows = _fr_rows(wh)
    platform = {
        fr["fulfillmentRequestNumber"]: (fr["status"], bool(fr.get("supplierOrderId")))
        for fr in sb.platform("fulfillment-requests")
    }
    return {
        po: (row["status"], row["order_status"], row["lines"], platform.get(po)) for po, row in rows.items()
    }


def _run_until_settled(template: Any, wh: Warehouse, runs: int = 6) -> int:
    """Scheduled runs as Airflow would make them (a failed run is retried); returns runs used."""
    for n in range(1, runs + 1):
        try:
            report = orders.send_orders(
                template, UsDirectHook(), orders.SendOptions(max_workers=4), wh=wh, platform=FlxpointHook()
            )
        except Exception as exc:  # a run that dies (e.g. the platform list failed) is retried
            log.warning("run %d failed and is retried: %s", n, exc)
            continue
        if not report.unfinished:
            return n
    raise AssertionError(f"orders not settled after {runs} runs")


def test_faults_of_every_kind_leave_the_same_end_state_and_one_creation_per_po(
    sandbox_factory: Any, duck_wh: Warehouse, orders_template: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    warehouse = duck_wh
    clean = sandbox_factory(**FAST_SANDBOX)
    use_sandbox(clean, monkeypatch, **FAST_CLIENT)
    _run_until_settled(orders_template, warehouse)
    expected = _end_state(clean, warehouse)

    faulty = sandbox_factory(faults=_fault_rules(0.2), **FAST_SANDBOX)
    use_sandbox(faulty, monkeypatch, timeout=1, **FAST_CLIENT)
    with warehouse.connect() as conn:
        for t in (ot.FR_LINES, ot.FR):
            warehouse.execute(conn, f"DELETE FROM {warehouse.table(t)}")
    _run_until_settled(orders_template, warehouse)
    # A 'slow' answer is counted when the server finishes it, after the client gave up on it.
    deadline = time.monotonic() + 10
    while True:
        stats = faulty.stats()["requests"]
        fired = {k.split(":", 1)[1] for by in stats.values() for k in by if k.startswith("fault:")}
        if fired == set(ALL_FAULT_KINDS) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert fired == set(ALL_FAULT_KINDS), stats
    assert _end_state(faulty, warehouse) == expected
    counts = faulty.creation_counts()
    assert counts and {c["created"] for c in counts.values()} == {1}, counts
    _assert_warehouse_matches_supplier(warehouse, faulty)


KILL_SCRIPT = """
import os, signal, sys
from usdirect.hooks.usdirect import UsDirectHook
from usdirect.mapping import load_template
from usdirect.pipelines import orders
from usdirect.targets.warehouse.sql import Warehouse

real_submit = UsDirectHook.submit_order

def submit_then_die(self, payload):
    body = real_submit(self, payload)  # US Direct has created the order ...
    if payload["po_number"] == os.environ["KILL_AFTER_PO"]:
        os.kill(os.getpid(), signal.SIGKILL)  # ... and the worker dies before recording it
    return body

UsDirectHook.submit_order = submit_then_die
wh = Warehouse.from_conn_id("wh_orders", schema=os.environ.get("WH_SCHEMA") or None)
orders.send_orders(load_template(sys.argv[1]), UsDirectHook(), orders.SendOptions(max_workers=1), wh=wh)
"""


def test_worker_killed_between_submit_and_record_never_creates_twice(
    sandbox_factory: Any, warehouse: Warehouse, orders_template: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb = sandbox_factory(**FAST_SANDBOX)
    use_sandbox(sb, monkeypatch, **FAST_CLIENT)
    frs = _seed(warehouse, sb)
    victim = frs[3]["fulfillmentRequestNumber"]
    env = os.environ | {"KILL_AFTER_PO": victim, "WH_SCHEMA": warehouse.schema or ""}
    proc = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(ORDERS_TEMPLATE)], env=env, capture_output=True, timeout=120
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    rows = _fr_rows(warehouse)
    assert rows[victim]["status"] == "submitting" and rows[victim]["attempts"] == 1
    assert rows[victim]["supplier_order_id"] is None
    assert sb.creation_counts()[victim] == {"submitted": 1, "created": 1}

    report = orders.send_orders(
        orders_template, UsDirectHook(), orders.SendOptions(max_workers=4), wh=warehouse
    )
    resumed = next(o for o in report.outcomes if o.po_number == victim)
    assert resumed.kind == orders.OutcomeKind.SUBMITTED and resumed.found_existing
    assert sb.creation_counts()[victim] == {"submitted": 1, "created": 1}
    assert {c["created"] for c in sb.creation_counts().values()} == {1}
    _assert_warehouse_matches_supplier(warehouse, sb)

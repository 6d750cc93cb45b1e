"""Verify first: which runs may submit orders, and what a dry run shows of each order."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.contract_examples import CONTRACT_FR
from usdirect.pipelines.orders_gate import describe_payload, gate


@pytest.mark.parametrize(
    ("automatic", "run_type", "params", "submit"),
    [
        # automatic: false (the default): only a person submits, in a manual run that says so
        (False, "scheduled", {}, False),
        (False, "scheduled", {"confirm": True}, False),  # a schedule never confirms
        (False, "backfill", {"confirm": True, "po_numbers": ["P1"]}, False),
        (False, "asset_triggered", {}, False),
        (False, "manual", {}, False),
        (False, "manual", {"max_orders": 3}, False),
        (False, "manual", {"po_numbers": ["P1"]}, True),
        (False, "manual", {"confirm": True}, True),
        (False, "manual", {"confirm": True, "dry_run": True}, False),  # dry run always wins
        # automatic: true: every run submits unless it asks for a dry run
        (True, "scheduled", {}, True),
        (True, "manual", {}, True),
        (True, "scheduled", {"dry_run": True}, False),
    ],
)
def test_who_may_submit(automatic: bool, run_type: str, params: dict[str, Any], submit: bool) -> None:
    decision = gate(automatic, run_type, params)
    assert decision.submit is submit
    assert decision.held is (not submit and not params.get("dry_run"))
    if decision.held:
        assert "operations.send_orders.automatic: false" in decision.reason
        assert '{"po_numbers": ["<PO>"]}' in decision.reason and '{"confirm": true}' in decision.reason
        assert run_type in decision.reason


def test_a_dry_run_line_names_the_order_but_not_the_street_address_or_phone() -> None:
    address = CONTRACT_FR["shippingAddress"]
    payload = {
        "po_number": "54001-1",
        "shipping_code": "UPS-GND",
        "ship_to": {
            "name": address["name"],
            "address1": address["addressLine1"],
            "city": "Springfield",
            "state": "IL",
            "postal_code": "62701",
            "phone": "217-555-0100",
        },
        "lines": [
            {"line_number": 1, "item_number": "10234", "quantity": 2},
            {"line_number": 2, "item_number": "10500", "quantity": 1},
        ],
    }
    line = describe_payload(payload)
    assert line == "PO 54001-1: 2 line(s) [10234 x2, 10500 x1], ship to Springfield, IL, UPS-GND"
    for private in (address["name"], address["addressLine1"], "217-555-0100", "62701"):
        assert private not in line

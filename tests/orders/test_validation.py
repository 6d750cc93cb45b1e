"""Pre-validation: every rule US Direct enforces is caught before sending, with field and fix."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.support.contract_examples import CONTRACT_PO
from tests.support.orders import make_fr
from usdirect.pipelines import orders

GOOD: dict[str, Any] = copy.deepcopy(CONTRACT_PO)


def _with(path: str, value: Any) -> dict[str, Any]:
    payload = copy.deepcopy(GOOD)
    target = payload
    *parents, last = path.split(".")
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    target[last] = value
    return payload


def test_a_good_order_passes() -> None:
    assert orders.validate_order(GOOD) == []


@pytest.mark.parametrize(
    ("path", "value", "field", "words"),
    [
        ("po_number", None, "po_number", "missing"),
        ("po_number", "PO 54007/1", "po_number", "1-30 characters"),
        ("po_number", "X" * 31, "po_number", "1-30 characters"),
        ("order_date", "", "order_date", "missing"),
        ("shipping_code", "DHL-X", "shipping_code", "unknown shipping code"),
        ("shipping_code", None, "shipping_code", "missing"),
        ("ship_to.name", " ", "ship_to.name", "missing"),
        ("ship_to.address1", "PO Box 1234", "ship_to.address1", "PO Box"),
        ("ship_to.address2", "P.O. Box 77", "ship_to.address2", "PO Box"),
        ("ship_to.address1", "Post Office Box 9", "ship_to.address1", "PO Box"),
        ("ship_to.state", "AK", "ship_to.state", "lower 48"),
        ("ship_to.state", "HI", "ship_to.state", "lower 48"),
        ("ship_to.state", "PR", "ship_to.state", "territories"),
        ("ship_to.state", "AE", "ship_to.state", "military"),
        ("ship_to.state", "AP", "ship_to.state", "military"),
        ("ship_to.country", "CA", "ship_to.country", "outside the US"),
        ("ship_to.postal_code", "7870", "ship_to.postal_code", "ZIP"),
        ("ship_to.postal_code", None, "ship_to.postal_code", "missing"),
        ("lines", [], "lines", "no items"),
        ("lines.0.quantity", 0, "lines[1].quantity", "below 1"),
        ("lines.0.quantity", -2, "lines[1].quantity", "below 1"),
        ("lines.0.item_number", "", "lines[1].item_number", "missing"),
    ],
)
def test_each_rule_names_the_field_and_the_fix(path: str, value: Any, field: str, words: str) -> None:
    problems = orders.validate_order(_with(path, value))
    assert [p.field for p in problems] == [field]
    message = str(problems[0])
    assert message.startswith(f"{field}: ") and words in message
    # every message says what to do, not only what is wrong
    assert any(
        verb in message
        for verb in (
            "use",
            "set",
            "choose",
            "complete",
            "ask",
            "correct",
            "add",
            "send",
            "renumber",
            "order",
            "the request",
        )
    )


def test_zip_plus_four_dc_and_a_street_named_box_are_fine() -> None:
    payload = _with("ship_to.postal_code", "20001-1234")
    payload["ship_to"]["state"] = "DC"
    payload["ship_to"]["address1"] = "12 Boxwood Lane"
    assert orders.validate_order(payload) == []


def test_several_problems_are_all_reported_in_one_message() -> None:
    payload = _with("ship_to.state", "HI")
    payload["lines"][0]["quantity"] = 0
    message = orders.format_problems(orders.validate_order(payload))
    assert "ship_to.state" in message and "lines[1].quantity" in message


def test_payloads_follow_the_contract(orders_template: Any) -> None:
    frs = [
        orders.OrderRequest("PO-1", 1, make_fr(1, "PO-1")),
        orders.OrderRequest("PO-2", 2, make_fr(2, "PO-2", shippingMethod={"shippingCode": "DHLX"})),
        orders.OrderRequest("PO-3", 3, make_fr(3, "PO-3", shippingAddress={"addressLine1": "PO Box 5"})),
    ]
    ready, invalid = orders.build_payloads(orders_template, frs)
    assert [r.po_number for r, _ in ready] == ["PO-1"]
    assert ready[0][1] == {
        "po_number": "PO-1",
        "customer_order_number": "SHOP-1",
        "order_date": "2026-11-20",
        "shipping_code": "UPS-GND",
        "ship_to": {
            "name": "Dana Reyes",
            "company": None,
            "address1": "123 Main St",
            "address2": "Apt 4",
            "city": "Austin",
            "state": "TX",
            "postal_code": "78701",
            "country": "US",
            "phone": "512-555-0100",
            "email": "dana@example.com",
        },
        "lines": [
            {"line_number": 1, "item_number": "10234", "quantity": 2, "unit_cost": "12.49"},
            {"line_number": 2, "item_number": "10500", "quantity": 1, "unit_cost": "5.00"},
        ],
    }
    problems = {o.po_number: o.message for o in invalid}
    assert problems["PO-2"].startswith("shipping_code") and "DHLX" in problems["PO-2"]
    assert problems["PO-3"].startswith("ship_to.address1") and "PO Box" in problems["PO-3"]
    assert all(o.kind == orders.OutcomeKind.NEEDS_ATTENTION for o in invalid)

"""Orders, shipments and invoices templates on contract JSON and on the sandbox's real data."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime
from decimal import Decimal

import httpx
import pytest

from tests.support.contract_examples import CONTRACT_FR, CONTRACT_PO
from tests.support.paths import MAPPINGS
from usdirect.mapping import load_template

SHIPPING = {
    "UPSG": "UPS-GND",
    "UPS2": "UPS-2DA",
    "UPSN": "UPS-NDA",
    "FEDG": "FEDEX-GND",
    "FEDX": "FEDEX-EXP",
    "USPSP": "USPS-PRIORITY",
}
# The fulfillment request and PO payload of the two API contracts (docs/*-api.md).
CONTRACT_SHIPMENT = {
    "shipment_id": "SH-77812",
    "po_number": "54007-1",
    "carrier": "UPS",
    "shipping_code": "UPS-GND",
    "tracking_number": "1Z9999W99999999999",
    "status": "in_transit",
    "ship_date": "2026-11-21",
    "updated_at": "2026-11-21T19:02:11Z",
    "items": [{"line_number": 1, "item_number": "10234", "quantity": 2}],
}
CONTRACT_INVOICE = {
    "invoice_number": "INV-10293",
    "po_number": "54007-1",
    "invoice_date": "2026-11-22",
    "status": "unpaid",
    "currency": "USD",
    "lines": [
        {"line_number": 1, "item_number": "10234", "quantity": 2, "unit_cost": "12.49", "amount": "24.98"}
    ],
    "shipping": "5.95",
    "fees": "0.00",
    "tax": "0.00",
    "total": "30.93",
}


@pytest.fixture(scope="module")
def orders():
    return load_template(MAPPINGS / "orders.yaml")


@pytest.fixture(scope="module")
def shipments():
    return load_template(MAPPINGS / "shipments.yaml")


@pytest.fixture(scope="module")
def invoices():
    return load_template(MAPPINGS / "invoices.yaml")


def test_contract_fulfillment_request_becomes_the_contract_po_payload(orders) -> None:
    result = orders.map_records([CONTRACT_FR])
    assert result.rejects.num_rows == 0
    assert result.payloads(exclude=("row_number", "fr_id")) == [CONTRACT_PO]
    row = result.mapped.to_pylist()[0]
    assert row["fr_id"] == 880011 and row["order_date"] == date(2026, 11, 20) and row["row_number"] == 1
    assert result.children["lines"].to_pylist() == [
        {
            "po_number": "54007-1",
            "line_number": 1,
            "item_number": "10234",
            "quantity": 2,
            "unit_cost": Decimal("12.49"),
            "row_number": 1,
        }
    ]


@pytest.mark.parametrize(("platform", "supplier"), sorted(SHIPPING.items()))
def test_every_platform_shipping_code_is_mapped(orders, platform: str, supplier: str) -> None:
    fr = copy.deepcopy(CONTRACT_FR)
    fr["shippingMethod"]["shippingCode"] = platform.lower()  # case does not matter
    assert orders.map_records([fr]).mapped.column("shipping_code").to_pylist() == [supplier]


def test_bad_fulfillment_requests_are_rejected_whole_with_reasons(orders) -> None:
    unknown_code = copy.deepcopy(CONTRACT_FR) | {"fulfillmentRequestNumber": "54008-1"}
    unknown_code["shippingMethod"]["shippingCode"] = "XYZ"
    bad_line = copy.deepcopy(CONTRACT_FR) | {"fulfillmentRequestNumber": "54009-1"}
    bad_line["items"].append({"id": 2, "sku": "USD-10235", "quantity": "two", "cost": 1})
    no_items = copy.deepcopy(CONTRACT_FR) | {"fulfillmentRequestNumber": "54010-1", "items": []}
    bad_po = copy.deepcopy(CONTRACT_FR) | {"fulfillmentRequestNumber": "54011/1"}
    result = orders.map_records([CONTRACT_FR, unknown_code, bad_line, no_items, bad_po], row_offset=10)
    assert result.mapped.column("po_number").to_pylist() == ["54007-1"]
    assert result.children["lines"].column("po_number").to_pylist() == ["54007-1"]
    assert result.children["lines"].column("row_number").to_pylist() == [11]
    assert result.payloads(exclude=("row_number", "fr_id")) == [CONTRACT_PO]
    rejects = {r["key"]: r for r in result.rejects.to_pylist()}
    assert rejects["54008-1"]["reason"] == (
        f"unknown shipping code XYZ: add it to the shipping_codes value map in {MAPPINGS / 'value_maps.yaml'}"
    )
    assert rejects["54008-1"]["row_number"] == 12
    assert json.loads(rejects["54008-1"]["raw"]) == unknown_code
    assert rejects["54009-1"]["reason"] == "items[2]: quantity: not a valid int (source 'quantity')"
    assert rejects["54010-1"]["reason"] == "no items in the record (the lines list is empty)"
    assert rejects["54011/1"]["reason"] == "po_number: US Direct accepts 1-30 characters of A-Z a-z 0-9 - _"
    assert set(rejects) == {"54008-1", "54009-1", "54010-1", "54011/1"}


def test_sandbox_fulfillment_requests(orders, sandbox) -> None:
    frs = [fr for fr in sandbox.platform("fulfillment-requests") if fr["sourceName"] == "US Direct"]
    result = orders.map_records(frs)
    payloads = {p["po_number"]: p for p in result.payloads(exclude=("row_number",))}
    rejects = {r["key"]: r["reason"] for r in result.rejects.to_pylist()}
    good = [fr for fr in frs if "sandboxDefect" not in fr]
    assert len(good) >= 20
    for fr in good:
        payload = payloads[fr["fulfillmentRequestNumber"]]
        address = fr["shippingAddress"]
        assert payload["fr_id"] == fr["id"]
        assert payload["customer_order_number"] == fr["orderNumber"]
        assert payload["order_date"] == fr["insertedAt"][:10]
        assert payload["shipping_code"] == SHIPPING[fr["shippingMethod"]["shippingCode"]]
        assert payload["ship_to"] == {
            "name": address["name"],
            "company": address["companyName"] or None,
            "address1": address["addressLine1"],
            "address2": address["addressLine2"] or None,
            "city": address["city"],
            "state": address["stateCode"],
            "postal_code": address["postal"],
            "country": address["countryCode"],
            "phone": address["phone"],
            "email": address["email"],
        }
        assert payload["lines"] == [
            {
                "line_number": n,
                "item_number": item["sku"].removeprefix("USD-"),
                "quantity": item["quantity"],
                "unit_cost": str(Decimal(str(item["cost"])).quantize(Decimal("0.01"))),
            }
            for n, item in enumerate(fr["items"], start=1)
        ]
    defects = {fr["sandboxDefect"]: fr["fulfillmentRequestNumber"] for fr in frs if "sandboxDefect" in fr}
    assert rejects[defects["unknown_shipping_code"]].startswith("unknown shipping code DHLX: add it to")
    assert rejects[defects["missing_postal_code"]] == (
        "ship_to.postal_code is required but empty (source 'shippingAddress.postal')"
    )
    assert rejects[defects["zero_quantity"]] == ("items[1]: quantity: must be at least 1")
    # Business rules US Direct itself enforces (422 / line rejection) pass the mapping.
    for kind in ("po_box", "alaska", "unknown_sku"):
        assert defects[kind] in payloads
    assert len(payloads) + len(rejects) == len(frs)


def test_contract_shipment(shipments) -> None:
    result = shipments.map_records([CONTRACT_SHIPMENT])
    assert result.rejects.num_rows == 0
    assert result.mapped.drop_columns(["row_number"]).to_pylist() == [
        {
            "shipment_id": "SH-77812",
            "po_number": "54007-1",
            "carrier": "UPS",
            "shipping_code": "UPS-GND",
            "method": "Ground",
            "tracking_number": "1Z9999W99999999999",
            "status": "In Transit",
            "supplier_status": "in_transit",
            "ship_date": date(2026, 11, 21),
            "updated_at": datetime(2026, 11, 21, 19, 2, 11, tzinfo=UTC),
        }
    ]
    assert result.children["items"].to_pylist() == [
        {
            "shipment_id": "SH-77812",
            "line_number": 1,
            "item_number": "10234",
            "sku": "USD-10234",
            "quantity": 2,
            "row_number": 1,
        }
    ]


@pytest.mark.parametrize(
    ("status", "platform"),
    [
        ("label_created", "Label Created"),
        ("DELIVERED", "Delivered"),
        ("exception", "Exception"),
        ("returned", "Returned"),
    ],
)
def test_shipment_statuses(shipments, status: str, platform: str) -> None:
    record = CONTRACT_SHIPMENT | {"status": status}
    assert shipments.map_records([record]).mapped.column("status").to_pylist() == [platform]


def test_unknown_shipment_status_is_rejected(shipments) -> None:
    result = shipments.map_records([CONTRACT_SHIPMENT | {"status": "lost_in_space"}])
    assert result.mapped.num_rows == 0 and result.children["items"].num_rows == 0
    (reject,) = result.rejects.to_pylist()
    assert reject["key"] == "54007-1" and reject["reason"].startswith("unknown shipment status lost_in_space")


def test_contract_invoice(invoices) -> None:
    result = invoices.map_records([CONTRACT_INVOICE])
    assert result.rejects.num_rows == 0
    assert result.mapped.drop_columns(["row_number"]).to_pylist() == [
        {
            "invoice_number": "INV-10293",
            "po_number": "54007-1",
            "invoice_date": date(2026, 11, 22),
            "status": "Unpaid",
            "supplier_status": "unpaid",
            "currency": "USD",
            "total": Decimal("30.93"),
            "shipping": Decimal("5.95"),
            "fees": Decimal("0.00"),
            "tax": Decimal("0.00"),
        }
    ]
    assert result.children["lines"].to_pylist() == [
        {
            "invoice_number": "INV-10293",
            "line_number": 1,
            "item_number": "10234",
            "sku": "USD-10234",
            "quantity": 2,
            "unit_cost": Decimal("12.49"),
            "amount": Decimal("24.98"),
            "row_number": 1,
        }
    ]
    missing_fees = {k: v for k, v in CONTRACT_INVOICE.items() if k not in ("fees", "tax", "currency")}
    row = invoices.map_records([missing_fees | {"status": "Paid"}]).mapped.to_pylist()[0]
    assert (row["fees"], row["tax"], row["currency"], row["status"]) == (
        Decimal(0),
        Decimal(0),
        "USD",
        "Paid",
    )


def test_sandbox_shipments_and_invoices(shipments, invoices, sandbox_factory) -> None:
    """Submit a real order to the sandbox, let it ship and invoice, and map what US Direct returns."""
    sb = sandbox_factory()
    truth = sb.catalog_truth()["rows"]
    items = [r for r in truth if r["status"] == "active" and r["quantity"] > 5][:2]
    payload = copy.deepcopy(CONTRACT_PO) | {"po_number": "MAPTEST-1"}
    payload["lines"] = [
        {"line_number": n, "item_number": r["sku"], "quantity": 1, "unit_cost": r["cost"]}
        for n, r in enumerate(items, start=1)
    ]
    api = httpx.Client(
        base_url=sb.usdirect_url, headers={"Authorization": f"Bearer {sb.api_token}"}, timeout=30
    )
    with api:
        assert api.post("/v1/orders", json=payload).status_code == 201
        sb.advance_clock(days=6)
        raw_shipments = api.get("/v1/orders/MAPTEST-1/shipments").json()["shipments"]
        invoice_response = api.get("/v1/invoices/MAPTEST-1", headers={"X-Reseller-Token": sb.reseller_token})
    assert raw_shipments and invoice_response.status_code == 200
    raw_invoice = invoice_response.json()

    mapped = shipments.map_records(raw_shipments)
    assert mapped.rejects.num_rows == 0
    statuses = {
        "label_created": "Label Created",
        "in_transit": "In Transit",
        "delivered": "Delivered",
        "exception": "Exception",
        "returned": "Returned",
    }
    for row, raw in zip(mapped.mapped.to_pylist(), raw_shipments, strict=True):
        assert row["shipment_id"] == raw["shipment_id"] and row["po_number"] == "MAPTEST-1"
        assert row["tracking_number"] == raw["tracking_number"] and row["carrier"] == raw["carrier"]
        assert row["status"] == statuses[raw["status"]] and row["supplier_status"] == raw["status"]
        assert row["ship_date"] == date.fromisoformat(raw["ship_date"])
        assert row["updated_at"] == datetime.fromisoformat(raw["updated_at"].replace("Z", "+00:00"))
    shipped = sorted(
        (i["shipment_id"], i["item_number"], i["sku"], i["quantity"])
        for i in mapped.children["items"].to_pylist()
    )
    assert shipped == sorted(
        (s["shipment_id"], i["item_number"], f"USD-{i['item_number']}", i["quantity"])
        for s in raw_shipments
        for i in s["items"]
    )

    inv = invoices.map_records([raw_invoice])
    assert inv.rejects.num_rows == 0
    row = inv.mapped.to_pylist()[0]
    assert row["invoice_number"] == raw_invoice["invoice_number"] and row["po_number"] == "MAPTEST-1"
    assert row["total"] == Decimal(raw_invoice["total"]) and row["shipping"] == Decimal(
        raw_invoice["shipping"]
    )
    assert row["status"] == raw_invoice["status"].capitalize()
    lines = inv.children["lines"].to_pylist()
    assert [(line["item_number"], line["amount"]) for line in lines] == [
        (line["item_number"], Decimal(line["amount"])) for line in raw_invoice["lines"]
    ]
    assert row["total"] == sum(line["amount"] for line in lines) + row["shipping"] + row["fees"] + row["tax"]

"""The Flxpoint-like server against docs/flxpoint-api.md: auth, limits, inventory, FRs, shipments."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from sandbox.runner import SandboxInfo
from tests.support.sandbox_api import assert_error, platform

PLATFORM_CODES = {"UPSG", "UPS2", "UPSN", "FEDG", "FEDX", "USPSP"}


def _frs(client: httpx.Client, sb: SandboxInfo, **params: object) -> httpx.Response:
    return client.get(f"{sb.flxpoint_url}/fulfillment-requests", params=params, headers=platform(sb))


def _shipment(number: str, tracking: str, **changes: object) -> dict:
    body = {
        "fulfillmentRequestNumber": number,
        "allowDuplicateTrackingNumbers": False,
        "shipment": {
            "trackingNumber": tracking,
            "carrier": "UPS",
            "method": "Ground",
            "shippedAt": "2026-11-21T00:00:00Z",
            "status": "In Transit",
        },
        "shipmentItems": [{"sku": "USD-100001", "quantity": 2}],
    }
    return body | changes


def _invoice(number: str, invoice_number: str, **changes: object) -> dict:
    body = {
        "invoiceNumber": invoice_number,
        "fulfillmentRequestNumber": number,
        "invoiceDate": "2026-11-22",
        "invoiceStatus": "Unpaid",
        "totalCost": 30.93,
        "totalProductCost": 24.98,
        "totalShippingCost": 5.95,
        "totalFeeCost": 0,
        "totalTaxCost": 0,
        "invoiceItems": [
            {
                "invoiceItemType": "Product",
                "sku": "USD-100001",
                "quantity": 2,
                "perUnitCost": 12.49,
                "cost": 24.98,
            }
        ],
    }
    return body | changes


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/ping"),
        ("PUT", "/inventory/variants"),
        ("POST", "/inventory/parents"),
        ("GET", "/inventory/variants"),
        ("GET", "/fulfillment-requests"),
        ("PATCH", "/fulfillment-requests/880001/processed"),
        ("PATCH", "/fulfillment-requests/880001/status"),
        ("POST", "/shipments"),
        ("PATCH", "/shipments/5501"),
        ("POST", "/source-invoices"),
        ("PATCH", "/source-invoices/7301"),
    ],
)
def test_token_missing_or_wrong_is_401(sb: SandboxInfo, client: httpx.Client, method: str, path: str) -> None:
    url = sb.flxpoint_url + path
    assert_error(client.request(method, url), 401, "unauthorized")
    assert_error(client.request(method, url, headers={"X-API-TOKEN": "nope"}), 401, "unauthorized")
    bearer = {"Authorization": f"Bearer {sb.platform_token}"}
    assert_error(client.request(method, url, headers=bearer), 401, "unauthorized")


def test_ping(sb: SandboxInfo, client: httpx.Client) -> None:
    response = client.get(f"{sb.flxpoint_url}/ping", headers=platform(sb))
    assert response.json() == {"accountId": 1, "tokenType": "source"}


def test_rate_limit_two_per_second(sandbox_factory) -> None:
    sb = sandbox_factory()
    with httpx.Client(timeout=30) as c:
        with ThreadPoolExecutor(5) as pool:
            responses = list(
                pool.map(lambda _: c.get(f"{sb.flxpoint_url}/ping", headers=platform(sb)), range(5))
            )
        assert sorted(r.status_code for r in responses) == [200, 200, 429, 429, 429]
        limited = next(r for r in responses if r.status_code == 429)
        assert_error(limited, 429, "rate_limited")
        assert int(limited.headers["Retry-After"]) >= 1
        time.sleep(1.05)
        assert c.get(f"{sb.flxpoint_url}/ping", headers=platform(sb)).status_code == 200
    assert sb.stats("flxpoint")["peak_rps"]["platform_token"] == 5


# --- fulfillment requests -----------------------------------------------------------------------


def test_seeded_fulfillment_requests(sb: SandboxInfo, client: httpx.Client) -> None:
    body = _frs(client, sb, status="Unprocessed", sourceName="US Direct").json()
    frs = body["fulfillmentRequests"]
    assert body["page"] == 1 and body["totalPages"] == 1
    assert len(frs) == 26
    assert [f["insertedAt"] for f in frs] == sorted(f["insertedAt"] for f in frs)
    truth = {r["sku"]: r for r in sb.catalog_truth()["rows"]}
    for fr in frs[:20]:
        assert fr["status"] == "Unprocessed" and fr["sourceName"] == "US Direct"
        assert fr["shippingMethod"]["shippingCode"] in PLATFORM_CODES
        assert fr["shippingAddress"]["countryCode"] == "US" and len(fr["shippingAddress"]["postal"]) == 5
        for item in fr["items"]:
            assert item["sku"].startswith("USD-") and truth[item["sku"][4:]]["status"] == "active"
            assert item["quantity"] >= 1
    assert "sandboxDefect" not in frs[0]
    defects = {
        f["fulfillmentRequestNumber"]: f.get("sandboxDefect") for f in sb.platform("fulfillment-requests")
    }
    bad = {f["fulfillmentRequestNumber"]: f for f in frs if defects[f["fulfillmentRequestNumber"]]}
    kinds = {defects[n]: fr for n, fr in bad.items()}
    assert set(kinds) == {
        "po_box",
        "alaska",
        "missing_postal_code",
        "unknown_shipping_code",
        "unknown_sku",
        "zero_quantity",
    }
    assert kinds["po_box"]["shippingAddress"]["addressLine1"].startswith("PO Box")
    assert kinds["alaska"]["shippingAddress"]["stateCode"] == "AK"
    assert kinds["missing_postal_code"]["shippingAddress"]["postal"] is None
    assert kinds["unknown_shipping_code"]["shippingMethod"]["shippingCode"] not in PLATFORM_CODES
    assert kinds["unknown_sku"]["items"][0]["sku"][4:] not in truth
    assert kinds["zero_quantity"]["items"][0]["quantity"] == 0
    everyone = _frs(client, sb).json()["fulfillmentRequests"]
    assert {f["sourceName"] for f in everyone} == {"US Direct", "Acme Wholesale"} and len(everyone) == 28


def test_seed_is_deterministic_and_configurable(sandbox_factory) -> None:
    a = sandbox_factory(good_frs=3, bad_frs=False, platform_rate_limit=0)
    b = sandbox_factory(good_frs=3, bad_frs=False, platform_rate_limit=0)
    fa, fb = a.platform("fulfillment-requests"), b.platform("fulfillment-requests")
    assert len(fa) == 3 + 2
    strip = lambda frs: [{k: v for k, v in f.items() if k != "insertedAt"} for f in frs]  # noqa: E731
    assert strip(fa) == strip(fb)


def test_fr_paging_and_parameter_checks(sb: SandboxInfo, client: httpx.Client) -> None:
    pages = [_frs(client, sb, pageSize=5, page=p).json() for p in range(1, 8)]
    assert pages[0]["totalPages"] == 6
    ids = [f["id"] for p in pages for f in p["fulfillmentRequests"]]
    assert len(ids) == len(set(ids)) == 28
    assert pages[6]["fulfillmentRequests"] == []
    assert_error(_frs(client, sb, pageSize=101), 422, "validation_failed")
    assert_error(_frs(client, sb, page=0), 422, "validation_failed")
    assert_error(_frs(client, sb, status="Nope"), 422, "validation_failed")
    assert _frs(client, sb, status="Processed").json() == {
        "fulfillmentRequests": [],
        "page": 1,
        "totalPages": 1,
    }


def test_mark_processed_is_idempotent(sb: SandboxInfo, client: httpx.Client) -> None:
    url = f"{sb.flxpoint_url}/fulfillment-requests/880001/processed"
    for _ in range(2):
        response = client.patch(url, json={"supplierOrderId": "UD-000123"}, headers=platform(sb))
        assert response.status_code == 200
    assert client.patch(url, headers=platform(sb)).status_code == 200
    processed = _frs(client, sb, status="Processed").json()["fulfillmentRequests"]
    assert [(f["id"], f["supplierOrderId"]) for f in processed] == [(880001, "UD-000123")]
    assert len(_frs(client, sb, status="Unprocessed").json()["fulfillmentRequests"]) == 27
    missing = client.patch(f"{sb.flxpoint_url}/fulfillment-requests/1/processed", headers=platform(sb))
    assert_error(missing, 404, "not_found")


def test_flag_a_problem(sb: SandboxInfo, client: httpx.Client) -> None:
    url = f"{sb.flxpoint_url}/fulfillment-requests/880002/status"
    body = {"status": "Additional Info Required", "message": "ship_to.postal_code: must be 5 digits"}
    assert client.patch(url, json=body, headers=platform(sb)).status_code == 200
    fr = next(f for f in sb.platform("fulfillment-requests") if f["id"] == 880002)
    assert (fr["status"], fr["statusMessage"]) == (body["status"], body["message"])
    assert (
        client.patch(url, json={"status": "Failed", "message": "x"}, headers=platform(sb)).status_code == 200
    )
    for bad in (
        {"status": "Processed", "message": "x"},
        {"status": "Failed"},
        {"status": "Failed", "message": ""},
    ):
        assert_error(client.patch(url, json=bad, headers=platform(sb)), 422, "validation_failed")
    assert_error(client.patch(url, content=b"nope", headers=platform(sb)), 422, "validation_failed")
    missing = client.patch(
        f"{sb.flxpoint_url}/fulfillment-requests/1/status", json=body, headers=platform(sb)
    )
    assert_error(missing, 404, "not_found")


def test_admin_seeds_more_requests(sb: SandboxInfo, client: httpx.Client) -> None:
    added = sb.seed_fulfillment_requests(count=3)
    assert len(added) == 3 and all(f["status"] == "Unprocessed" for f in added)
    custom = sb.seed_fulfillment_requests(
        requests=[{"fulfillmentRequestNumber": "X-1", "sourceName": "US Direct"}]
    )
    assert custom[0]["id"] > added[-1]["id"]
    assert len(_frs(client, sb, sourceName="US Direct").json()["fulfillmentRequests"]) == 26 + 4


# --- inventory ----------------------------------------------------------------------------------


def _put(client: httpx.Client, sb: SandboxInfo, body: object) -> httpx.Response:
    return client.put(f"{sb.flxpoint_url}/inventory/variants", json=body, headers=platform(sb))


def _variant(sb: SandboxInfo, sku: str) -> dict:
    return next(v for v in sb.platform("variants") if v["sku"] == sku)


def test_update_variants_modify_flags(sb: SandboxInfo, client: httpx.Client) -> None:
    sku = next(v["sku"] for v in sb.platform("variants") if v["map"] is not None and v["msrp"] is not None)
    update = {
        "sku": sku,
        "cost": 12.49,
        "msrp": None,
        "map": None,
        "quantity": 37,
        "archived": True,
        "modifyCost": "update",
        "modifyMsrp": "update",
        "modifyMap": "updateNonNull",
        "modifyQuantity": "none",
        "modifyArchived": "update",
    }
    before = _variant(sb, sku)
    response = _put(client, sb, [update, {"sku": "USD-99999", "modifyCost": "update", "cost": 1}])
    assert response.json() == {"updated": 1, "notFound": ["USD-99999"]}
    after = _variant(sb, sku)
    assert after["cost"] == 12.49 and after["msrp"] is None and after["archived"] is True
    assert after["map"] == before["map"] and after["quantity"] == before["quantity"]
    assert not any(v["sku"] == "USD-99999" for v in sb.platform("variants"))


@pytest.mark.parametrize(
    "item",
    [
        {"modifyCost": "update", "cost": 1},
        {"sku": "USD-1", "modifyCost": "always", "cost": 1},
        {"sku": "USD-1", "modifyQuantity": "update", "quantity": -1},
        {"sku": "USD-1", "modifyQuantity": "update", "quantity": 1.5},
        {"sku": "USD-1", "modifyCost": "update", "cost": 1.234},
        {"sku": "USD-1", "modifyArchived": "update", "archived": "yes"},
    ],
)
def test_update_variants_rejects_bad_items(sb: SandboxInfo, client: httpx.Client, item: dict) -> None:
    assert_error(_put(client, sb, [item]), 422, "validation_failed")


def test_batch_limits(sb: SandboxInfo, client: httpx.Client) -> None:
    fifty = [{"sku": f"USD-{i}"} for i in range(50)]
    assert _put(client, sb, fifty).json()["updated"] == 0
    assert_error(_put(client, sb, [*fifty, {"sku": "USD-x"}]), 422, "batch_too_large")
    assert_error(_put(client, sb, {"sku": "USD-1"}), 422, "validation_failed")
    parents = [{"sku": f"USD-N{i}", "title": "T", "variants": [{"sku": f"USD-N{i}"}]} for i in range(21)]
    url = f"{sb.flxpoint_url}/inventory/parents"
    assert_error(client.post(url, json=parents, headers=platform(sb)), 422, "batch_too_large")
    assert client.post(url, json=parents[:20], headers=platform(sb)).json() == {"created": 20, "updated": 0}


def test_create_parents_then_update_in_place(sb: SandboxInfo, client: httpx.Client) -> None:
    parent = {
        "sku": "USD-777777",
        "title": "Stainless Steel Grill Brush",
        "manufacturer": "GrillPro",
        "variants": [
            {
                "sku": "USD-777777",
                "title": "Stainless Steel Grill Brush",
                "upc": "012345678905",
                "mpn": "GP-18B",
                "cost": 12.49,
                "msrp": 24.99,
                "map": 19.99,
                "quantity": 37,
                "weight": 1.2,
                "weightUnit": "pound",
            }
        ],
    }
    url = f"{sb.flxpoint_url}/inventory/parents"
    assert client.post(url, json=[parent], headers=platform(sb)).json() == {"created": 1, "updated": 0}
    parent["variants"][0]["cost"] = 13.0
    assert client.post(url, json=[parent], headers=platform(sb)).json() == {"created": 0, "updated": 1}
    variant = _variant(sb, "USD-777777")
    assert variant["cost"] == 13.0 and variant["upc"] == "012345678905" and variant["archived"] is False
    assert_error(
        client.post(url, json=[{"sku": "USD-1", "title": "T"}], headers=platform(sb)),
        422,
        "validation_failed",
    )
    bad_money = dict(parent, variants=[dict(parent["variants"][0], cost="12.49")])
    assert_error(client.post(url, json=[bad_money], headers=platform(sb)), 422, "validation_failed")


def test_read_variants(sb: SandboxInfo, client: httpx.Client) -> None:
    url = f"{sb.flxpoint_url}/inventory/variants"
    everything = sorted(v["sku"] for v in sb.platform("variants"))
    first = client.get(url, params={"pageSize": 10}, headers=platform(sb)).json()
    assert [v["sku"] for v in first["variants"]] == everything[:10]
    assert first["totalPages"] == -(-len(everything) // 10)
    wanted = [everything[3], everything[1], "USD-nothing"]
    chosen = client.get(url, params={"skus": ",".join(wanted)}, headers=platform(sb)).json()
    assert [v["sku"] for v in chosen["variants"]] == sorted(wanted[:2])
    too_many = ",".join(f"USD-{i}" for i in range(51))
    assert_error(client.get(url, params={"skus": too_many}, headers=platform(sb)), 422, "validation_failed")
    assert_error(client.get(url, params={"pageSize": 501}, headers=platform(sb)), 422, "validation_failed")
    assert_error(client.get(url, params={"page": "x"}, headers=platform(sb)), 422, "validation_failed")


# --- shipments and invoices ---------------------------------------------------------------------


def test_shipments_create_duplicate_and_patch(sb: SandboxInfo, client: httpx.Client) -> None:
    url = f"{sb.flxpoint_url}/shipments"
    created = client.post(url, json=_shipment("54001-1", "1Z999"), headers=platform(sb))
    assert created.status_code == 201
    shipment_id = created.json()["id"]
    duplicate = assert_error(
        client.post(url, json=_shipment("54001-1", "1Z999"), headers=platform(sb)),
        409,
        "duplicate_tracking_number",
    )
    assert duplicate["details"][0]["id"] == shipment_id
    allowed = client.post(
        url, json=_shipment("54002-1", "1Z999", allowDuplicateTrackingNumbers=True), headers=platform(sb)
    )
    assert allowed.status_code == 201 and allowed.json()["id"] != shipment_id
    unknown = client.post(url, json=_shipment("NOPE-1", "1Z000"), headers=platform(sb))
    assert_error(unknown, 404, "not_found")
    for bad in (_shipment("54001-1", ""), _shipment("54001-1", "1Z1", shipmentItems=[]), [1]):
        assert_error(client.post(url, json=bad, headers=platform(sb)), 422, "validation_failed")
    patch = client.patch(f"{url}/{shipment_id}", json={"status": "Delivered"}, headers=platform(sb))
    assert patch.status_code == 200
    stored = next(s for s in sb.platform("shipments") if s["id"] == shipment_id)
    assert stored["shipment"]["status"] == "Delivered"
    assert_error(
        client.patch(f"{url}/{shipment_id}", json={"status": "Lost"}, headers=platform(sb)),
        422,
        "validation_failed",
    )
    assert_error(
        client.patch(f"{url}/1", json={"status": "Delivered"}, headers=platform(sb)), 404, "not_found"
    )


def test_source_invoices_create_duplicate_and_patch(sb: SandboxInfo, client: httpx.Client) -> None:
    url = f"{sb.flxpoint_url}/source-invoices"
    created = client.post(url, json=_invoice("54001-1", "INV-1"), headers=platform(sb))
    assert created.status_code == 201
    invoice_id = created.json()["id"]
    duplicate = client.post(url, json=_invoice("54001-1", "INV-1"), headers=platform(sb))
    assert assert_error(duplicate, 409, "duplicate_invoice_number")["details"][0]["id"] == invoice_id
    assert_error(client.post(url, json=_invoice("NOPE", "INV-2"), headers=platform(sb)), 404, "not_found")
    for bad in (
        _invoice("54001-1", "INV-3", totalCost=31.0),
        _invoice("54001-1", "INV-3", totalProductCost=20.0, totalCost=25.95),
        _invoice("54001-1", "INV-3", invoiceStatus="Open"),
        _invoice("54001-1", "INV-3", totalShippingCost=5.955),
        _invoice("54001-1", ""),
    ):
        assert_error(client.post(url, json=bad, headers=platform(sb)), 422, "validation_failed")
    patch = client.patch(f"{url}/{invoice_id}", json={"invoiceStatus": "Paid"}, headers=platform(sb))
    assert patch.status_code == 200
    assert sb.platform("source-invoices")[0]["invoiceStatus"] == "Paid"
    assert_error(
        client.patch(f"{url}/{invoice_id}", json={"invoiceStatus": "Gone"}, headers=platform(sb)),
        422,
        "validation_failed",
    )
    assert_error(
        client.patch(f"{url}/1", json={"invoiceStatus": "Paid"}, headers=platform(sb)), 404, "not_found"
    )

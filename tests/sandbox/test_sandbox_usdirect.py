"""The US Direct server against docs/usdirect-api.md: auth, feed, inventory paging, orders, invoices."""

from __future__ import annotations

import csv
import gzip
import io
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import formatdate

import httpx
import pytest

from sandbox.runner import SandboxInfo
from tests.support.contract_examples import CONTRACT_PO
from tests.support.sandbox_api import api, assert_error, platform, reseller

SINCE_EVER = "2000-01-01T00:00:00Z"


def _ship_to(**changes: object) -> dict:
    return dict(CONTRACT_PO["ship_to"]) | changes


def _truth(sb: SandboxInfo) -> list[dict]:
    return sb.catalog_truth()["rows"]


def _pick(
    sb: SandboxInfo, status: str, min_qty: int = 0, max_weight: float = 1e9, min_weight: float = 0
) -> str:
    for row in _truth(sb):
        weight = float(row["weight_lb"])
        if row["status"] == status and row["quantity"] >= min_qty and min_weight <= weight <= max_weight:
            return row["sku"]
    raise LookupError(status)


def _order(po: str, *lines: tuple[str, int], **changes: object) -> dict:
    body = {
        "po_number": po,
        "customer_order_number": f"SHOP-{po}",
        "order_date": "2026-11-20",
        "shipping_code": "UPS-GND",
        "ship_to": _ship_to(),
        "lines": [
            {"line_number": n, "item_number": sku, "quantity": qty, "unit_cost": "1.00"}
            for n, (sku, qty) in enumerate(lines, start=1)
        ],
    }
    return body | changes


def _light_skus(sb: SandboxInfo, n: int) -> list[str]:
    """Active, in-stock SKUs light enough that an order of a few units is not held for weight."""
    rows = _truth(sb)
    return [
        r["sku"]
        for r in rows
        if r["status"] == "active" and r["quantity"] >= 10 and float(r["weight_lb"]) <= 4
    ][:n]


def _light(sb: SandboxInfo) -> str:
    return _light_skus(sb, 1)[0]


def _submit(client: httpx.Client, sb: SandboxInfo, body: dict, **headers: str) -> httpx.Response:
    return client.post(f"{sb.usdirect_url}/v1/orders", json=body, headers=api(sb) | headers)


# --- auth ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/ping"),
        ("GET", f"/v1/inventory?updated_since={SINCE_EVER}"),
        ("POST", "/v1/orders"),
        ("GET", "/v1/orders/PO-1"),
        ("GET", "/v1/orders/PO-1/shipments"),
        ("GET", f"/v1/shipments?updated_since={SINCE_EVER}"),
    ],
)
def test_api_token_missing_or_wrong_is_401(
    sb: SandboxInfo, client: httpx.Client, method: str, path: str
) -> None:
    url = sb.usdirect_url + path
    assert_error(client.request(method, url), 401, "unauthorized")
    assert_error(client.request(method, url, headers={"Authorization": "Bearer nope"}), 401, "unauthorized")
    assert_error(client.request(method, url, headers={"Authorization": sb.api_token}), 401, "unauthorized")
    wrong_kind = {"Authorization": f"Bearer {sb.reseller_token}"}
    assert_error(client.request(method, url, headers=wrong_kind), 401, "unauthorized")


def test_reseller_token_missing_wrong_or_not_entitled(sb: SandboxInfo, client: httpx.Client) -> None:
    for headers in ({}, {"X-Reseller-Token": "nope"}, {"X-Reseller-Token": sb.api_token}, api(sb)):
        assert_error(client.get(f"{sb.usdirect_url}/v1/reseller/ping", headers=headers), 401, "unauthorized")
        assert_error(client.get(f"{sb.usdirect_url}/v1/invoices/PO-1", headers=headers), 401, "unauthorized")
    other = {"X-Reseller-Token": sb.other_reseller_token}
    assert client.get(f"{sb.usdirect_url}/v1/reseller/ping", headers=other).json() == {
        "reseller_id": "R-3003"
    }
    assert_error(client.get(f"{sb.usdirect_url}/v1/invoices/PO-1", headers=other), 403, "forbidden")


def test_readonly_token_may_read_but_not_submit(sb: SandboxInfo, client: httpx.Client) -> None:
    headers = {"Authorization": f"Bearer {sb.readonly_api_token}"}
    assert client.get(f"{sb.usdirect_url}/v1/ping", headers=headers).status_code == 200
    response = client.post(
        f"{sb.usdirect_url}/v1/orders", json=_order("RO-1", (_light(sb), 1)), headers=headers
    )
    assert_error(response, 403, "forbidden")
    assert "RO-1" not in sb.creation_counts()


def test_feed_key_missing_or_wrong_is_401(sb: SandboxInfo, client: httpx.Client) -> None:
    base = sb.feed_url.split("?")[0]
    for url in (base, base + "?key=nope", base + "?key=" + sb.api_token):
        assert_error(client.get(url), 401, "unauthorized")
        assert client.head(url).status_code == 401


def test_pings(sb: SandboxInfo, client: httpx.Client) -> None:
    assert client.get(f"{sb.usdirect_url}/v1/ping", headers=api(sb)).json() == {
        "account_id": "A-1001",
        "account_name": "Acme Outdoor",
        "api_version": "1",
    }
    response = client.get(f"{sb.usdirect_url}/v1/reseller/ping", headers=reseller(sb))
    assert response.json() == {"reseller_id": "R-2002"}


def test_unknown_path_uses_the_error_shape(sb: SandboxInfo, client: httpx.Client) -> None:
    assert_error(client.get(f"{sb.usdirect_url}/v1/nothing", headers=api(sb)), 404, "not_found")


# --- feed ---------------------------------------------------------------------------------------


def _parse_feed(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_feed_serves_the_catalog_plain_and_gzip(sb: SandboxInfo, client: httpx.Client) -> None:
    plain = client.get(sb.feed_url, headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200
    assert plain.headers["content-type"].startswith("text/csv")
    assert "content-encoding" not in plain.headers
    assert int(plain.headers["content-length"]) == len(plain.content)
    zipped = client.get(sb.feed_url, headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.content == plain.content  # decoded by httpx
    assert gzip.decompress(_raw_gzip(sb)) == plain.content
    rows = _parse_feed(plain.text)
    truth = _truth(sb)
    assert [r["sku"] for r in rows] == [t["sku"] for t in truth]
    assert len(rows) == 2000
    assert plain.headers["etag"] != zipped.headers["etag"]
    assert plain.headers["last-modified"]


def _raw_gzip(sb: SandboxInfo) -> bytes:
    """The gzip body as sent (no client-side decoding)."""
    with (
        httpx.Client(timeout=30) as c,
        c.stream("GET", sb.feed_url, headers={"Accept-Encoding": "gzip"}) as r,
    ):
        return b"".join(r.iter_raw())


def test_feed_head_and_conditional_requests(sb: SandboxInfo, client: httpx.Client) -> None:
    identity = {"Accept-Encoding": "identity"}
    head = client.head(sb.feed_url, headers=identity)
    get = client.get(sb.feed_url, headers=identity)
    assert head.status_code == 200 and head.content == b""
    for name in ("content-length", "etag", "last-modified"):
        assert head.headers[name] == get.headers[name]
    etag, gz_etag = get.headers["etag"], client.head(sb.feed_url).headers["etag"]
    for tag in (etag, gz_etag, f"W/{etag}", f'"other", {etag}', "*"):
        assert client.get(sb.feed_url, headers={"If-None-Match": tag}).status_code == 304
    assert client.get(sb.feed_url, headers={"If-None-Match": '"other"'}).status_code == 200
    since = {"If-Modified-Since": get.headers["last-modified"]}
    assert client.get(sb.feed_url, headers=since).status_code == 304
    earlier = formatdate(time.time() - 86400 * 400, usegmt=True)
    assert client.get(sb.feed_url, headers={"If-Modified-Since": earlier}).status_code == 200
    # If-None-Match wins over If-Modified-Since (RFC 9110).
    both = {"If-None-Match": '"other"', "If-Modified-Since": get.headers["last-modified"]}
    assert client.get(sb.feed_url, headers=both).status_code == 200

    sb.next_catalog_version(price=0.1)
    changed = client.get(sb.feed_url, headers={"If-None-Match": etag} | identity)
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert client.get(sb.feed_url, headers=since).status_code == 200


def test_feed_modes_empty_and_short(sb: SandboxInfo, client: httpx.Client) -> None:
    sb.set_feed_mode("empty")
    empty = client.get(sb.feed_url)
    assert empty.status_code == 200 and _parse_feed(empty.text) == []
    assert empty.text.startswith("sku,title,")
    sb.set_feed_mode("short", share=0.25)
    assert len(_parse_feed(client.get(sb.feed_url).text)) == 500
    sb.set_feed_mode("normal")
    assert len(_parse_feed(client.get(sb.feed_url).text)) == 2000
    assert client.post(f"{sb.usdirect_admin}/catalog/feed-mode", json={"mode": "odd"}).status_code == 422


def test_next_version_changes_feed_and_truth(sb: SandboxInfo, client: httpx.Client) -> None:
    before = {r["sku"]: r for r in _parse_feed(client.get(sb.feed_url).text)}
    result = sb.next_catalog_version(price=0.1, quantity=0.1, new=0.05, removed=0.02)
    assert result["version"] == 1
    assert result["changed"] == {"price": 200, "quantity": 200, "new": 100, "removed": 40}
    after = {r["sku"]: r for r in _parse_feed(client.get(sb.feed_url).text)}
    assert len(after) == 2000 - 40 + 100
    assert len(set(before) - set(after)) == 40
    assert {r["sku"] for r in _truth(sb)} == set(after)


def test_dirty_feed(sandbox_factory) -> None:
    sb = sandbox_factory(dirty=True)
    truth = sb.catalog_truth()
    assert {d["kind"] for d in truth["dirty_rows"]} == {
        "blank_sku",
        "duplicate_sku",
        "negative_quantity",
        "non_numeric_quantity",
        "unparseable_price",
        "wrong_column_count",
    }
    lines = list(csv.reader(io.StringIO(httpx.get(sb.feed_url, timeout=30).text)))
    assert len(lines) == 1 + 2000 + len(truth["dirty_rows"])
    for d in truth["dirty_rows"]:
        assert lines[d["line"] - 1][0] == d["sku"]


# --- inventory delta ----------------------------------------------------------------------------


def _page(client: httpx.Client, sb: SandboxInfo, **params: object) -> httpx.Response:
    return client.get(f"{sb.usdirect_url}/v1/inventory", params=params, headers=api(sb))


def test_inventory_parameters_are_validated(sb: SandboxInfo, client: httpx.Client) -> None:
    assert_error(_page(client, sb), 422, "validation_failed")
    assert_error(_page(client, sb, updated_since="yesterday"), 422, "validation_failed")
    assert_error(_page(client, sb, updated_since="2026-11-20T08:00:00"), 422, "validation_failed")
    for limit in (0, 1001, "x"):
        assert_error(_page(client, sb, updated_since=SINCE_EVER, limit=limit), 422, "validation_failed")
    assert_error(_page(client, sb, updated_since=SINCE_EVER, cursor="garbage!"), 422, "invalid_cursor")


def test_inventory_pages_every_changed_row_once(sb: SandboxInfo, client: httpx.Client) -> None:
    truth = {r["sku"]: r for r in _truth(sb)}
    since = sorted(r["updated_at"] for r in truth.values())[1000]
    seen: list[dict] = []
    cursor = None
    while True:
        params = {"updated_since": since, "limit": 170} | ({"cursor": cursor} if cursor else {})
        body = _page(client, sb, **params).json()
        seen += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    expected = {sku for sku, r in truth.items() if r["updated_at"] >= since}
    assert [r["sku"] for r in seen if r["sku"] in expected] == [r["sku"] for r in seen]
    assert len(seen) == len(expected) == len({r["sku"] for r in seen})
    keys = [(r["updated_at"], int(r["sku"])) for r in seen]
    assert keys == sorted(keys)
    item = seen[0]
    assert set(item) == {"sku", "cost", "msrp", "map", "quantity", "status", "updated_at"}
    t = truth[item["sku"]]
    assert (item["cost"], item["msrp"], item["map"], item["quantity"], item["status"]) == (
        t["cost"],
        t["msrp"],
        t["map"],
        t["quantity"],
        t["status"],
    )


def test_inventory_paging_survives_changes_between_pages(sb: SandboxInfo, client: httpx.Client) -> None:
    since = SINCE_EVER
    first = _page(client, sb, updated_since=since, limit=500).json()
    seen = {r["sku"]: r for r in first["items"]}
    # Change rows already seen and rows not yet reached, then add a whole catalog version.
    unseen = [r["sku"] for r in _truth(sb) if r["sku"] not in seen][:50]
    assert sb.touch_skus([*list(seen)[:50], *unseen]) == 100
    sb.next_catalog_version(price=0.05, quantity=0.05, new=0.01, removed=0)
    cursor = first["next_cursor"]
    pages = 1
    while cursor:
        body = _page(client, sb, updated_since=since, limit=500, cursor=cursor).json()
        for row in body["items"]:
            if row["sku"] not in seen or row["updated_at"] >= seen[row["sku"]]["updated_at"]:
                seen[row["sku"]] = row
        cursor = body["next_cursor"]
        pages += 1
    final = {r["sku"]: r for r in _truth(sb)}
    assert set(seen) == set(final)
    for sku, row in final.items():
        assert (seen[sku]["quantity"], seen[sku]["updated_at"]) == (row["quantity"], row["updated_at"]), sku
    assert pages > 4


# --- orders -------------------------------------------------------------------------------------


def test_order_accepted(sb: SandboxInfo, client: httpx.Client) -> None:
    sku = _light(sb)
    response = _submit(client, sb, _order("54007-1", (sku, 2)), **{"Idempotency-Key": "54007-1"})
    assert response.status_code == 201
    body = response.json()
    assert body["order_id"].startswith("UD-") and body["po_number"] == "54007-1"
    assert body["status"] == "received"
    assert body["lines"] == [{"line_number": 1, "item_number": sku, "status": "accepted"}]
    got = client.get(f"{sb.usdirect_url}/v1/orders/54007-1", headers=api(sb)).json()
    assert got["order_id"] == body["order_id"] and got["status"] == "received"
    assert got["ship_to"] == _ship_to() and got["lines"][0]["status"] == "accepted"
    assert sb.creation_counts()["54007-1"] == {"submitted": 1, "created": 1}


def test_duplicate_po_is_409_with_existing_order_id(sb: SandboxInfo, client: httpx.Client) -> None:
    body = _order("DUP-1", (_light(sb), 1))
    order_id = _submit(client, sb, body).json()["order_id"]
    error = assert_error(_submit(client, sb, body), 409, "duplicate_po")
    assert error["details"][0]["order_id"] == order_id
    assert sb.creation_counts()["DUP-1"] == {"submitted": 2, "created": 1}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"po_number": None}, "po_number"),
        ({"po_number": "has space"}, "po_number"),
        ({"po_number": "X" * 31}, "po_number"),
        ({"order_date": None}, "order_date"),
        ({"order_date": "20/11/2026"}, "order_date"),
        ({"shipping_code": "DHL"}, "shipping_code"),
        ({"shipping_code": None}, "shipping_code"),
        ({"ship_to": None}, "ship_to"),
        ({"ship_to": _ship_to(name=None)}, "ship_to.name"),
        ({"ship_to": _ship_to(address1="PO Box 12")}, "ship_to.address1"),
        ({"ship_to": _ship_to(address2="P.O. box 7")}, "ship_to.address2"),
        ({"ship_to": _ship_to(state="AK")}, "ship_to.state"),
        ({"ship_to": _ship_to(state="HI")}, "ship_to.state"),
        ({"ship_to": _ship_to(state="PR")}, "ship_to.state"),
        ({"ship_to": _ship_to(state="AE")}, "ship_to.state"),
        ({"ship_to": _ship_to(postal_code=None)}, "ship_to.postal_code"),
        ({"ship_to": _ship_to(postal_code="7870")}, "ship_to.postal_code"),
        ({"ship_to": _ship_to(country="CA")}, "ship_to.country"),
        ({"lines": []}, "lines"),
        ({"lines": [{"line_number": 1, "item_number": "100001", "quantity": 0}]}, "lines[0].quantity"),
        ({"lines": [{"line_number": 1, "item_number": "100001", "quantity": 1.5}]}, "lines[0].quantity"),
        ({"lines": [{"line_number": 1, "quantity": 1}]}, "lines[0].item_number"),
    ],
)
def test_invalid_orders_are_422_and_create_nothing(
    sb: SandboxInfo, client: httpx.Client, change: dict, field: str
) -> None:
    body = _order("BAD-1", ("100001", 1)) | change
    error = assert_error(_submit(client, sb, body), 422, "validation_failed")
    assert field in [d["field"] for d in error["details"]]
    assert_error(client.get(f"{sb.usdirect_url}/v1/orders/BAD-1", headers=api(sb)), 404, "order_not_found")
    assert sb.creation_counts().get("BAD-1", {"created": 0})["created"] == 0


def test_order_422_names_every_bad_field_and_rejects_non_json(sb: SandboxInfo, client: httpx.Client) -> None:
    body = _order("BAD-2", ("100001", 0), shipping_code="X", ship_to=_ship_to(state="AK", postal_code="1"))
    fields = {
        d["field"] for d in assert_error(_submit(client, sb, body), 422, "validation_failed")["details"]
    }
    assert fields == {"shipping_code", "ship_to.state", "ship_to.postal_code", "lines[0].quantity"}
    raw = client.post(f"{sb.usdirect_url}/v1/orders", content=b"{not json", headers=api(sb))
    assert_error(raw, 422, "validation_failed")
    mismatch = _submit(client, sb, _order("BAD-3", (_light(sb), 1)), **{"Idempotency-Key": "OTHER"})
    assert_error(mismatch, 422, "validation_failed")


def test_lines_rejected_per_item(sb: SandboxInfo, client: httpx.Client) -> None:
    good, discontinued = _light(sb), _pick(sb, "discontinued")
    low = next(r for r in _truth(sb) if r["status"] == "active" and 0 < r["quantity"] < 5)
    body = _order("PART-1", (good, 1), ("999", 1), (discontinued, 1), (low["sku"], low["quantity"] + 1))
    response = _submit(client, sb, body).json()
    assert response["status"] == "partially_accepted"
    assert [(ln["status"], ln.get("reason")) for ln in response["lines"]] == [
        ("accepted", None),
        ("rejected", "unknown_item"),
        ("rejected", "discontinued"),
        ("rejected", "out_of_stock"),
    ]
    all_bad = _submit(client, sb, _order("PART-2", ("999", 1))).json()
    assert all_bad["status"] == "cancelled"


def test_heavy_order_is_on_hold(sb: SandboxInfo, client: httpx.Client) -> None:
    heavy = _pick(sb, "active", min_qty=2, min_weight=31)
    assert _submit(client, sb, _order("HEAVY-1", (heavy, 1))).json()["status"] == "on_hold"
    light = _light(sb)
    assert _submit(client, sb, _order("LIGHT-1", (light, 1))).json()["status"] == "received"


# --- lifecycle, shipments, invoices -------------------------------------------------------------


def _shipments(client: httpx.Client, sb: SandboxInfo, po: str) -> list[dict]:
    response = client.get(f"{sb.usdirect_url}/v1/orders/{po}/shipments", headers=api(sb))
    assert response.status_code == 200
    return response.json()["shipments"]


def _invoice(client: httpx.Client, sb: SandboxInfo, po: str) -> httpx.Response:
    return client.get(f"{sb.usdirect_url}/v1/invoices/{po}", headers=reseller(sb))


def test_lifecycle_ship_invoice_pay(sb: SandboxInfo, client: httpx.Client) -> None:
    skus = _light_skus(sb, 3)
    pos = [f"LC-{i}" for i in range(12)]
    for po in pos:
        _submit(client, sb, _order(po, *[(s, 2) for s in skus], shipping_code="FEDEX-GND"))
    assert_error(_invoice(client, sb, pos[0]), 404, "invoice_not_found")
    sb.advance_clock(hours=2)
    get = lambda po: client.get(f"{sb.usdirect_url}/v1/orders/{po}", headers=api(sb)).json()  # noqa: E731
    assert {get(po)["status"] for po in pos} == {"processing"}
    assert _shipments(client, sb, pos[0]) == []
    sb.advance_clock(hours=19)
    first = {po: _shipments(client, sb, po) for po in pos}
    assert all(len(s) == 1 and s[0]["status"] == "label_created" for s in first.values())
    split = [po for po in pos if get(po)["status"] == "partially_shipped"]
    assert split, "some orders ship in parts"
    assert_error(_invoice(client, sb, split[0]), 404, "invoice_not_found")
    sb.advance_clock(days=2)
    for po in pos:
        order, shipments = get(po), _shipments(client, sb, po)
        assert order["status"] == "shipped"
        assert len(shipments) == (2 if po in split else 1)
        assert len({s["tracking_number"] for s in shipments}) == len(shipments)
        assert shipments[0]["shipment_id"] == first[po][0]["shipment_id"]
        assert (
            shipments[0]["status"] != "label_created"
            and shipments[0]["updated_at"] > first[po][0]["updated_at"]
        )
        assert all(s["carrier"] == "FedEx" and s["shipping_code"] == "FEDEX-GND" for s in shipments)
        shipped = {}
        for s in shipments:
            for item in s["items"]:
                shipped[item["line_number"]] = shipped.get(item["line_number"], 0) + item["quantity"]
        assert shipped == {1: 2, 2: 2, 3: 2}
        invoice = _invoice(client, sb, po).json()
        assert invoice["status"] == "unpaid" and invoice["currency"] == "USD"
        amounts = sum(float(ln["amount"]) for ln in invoice["lines"])
        assert all(
            float(ln["amount"]) == pytest.approx(float(ln["unit_cost"]) * ln["quantity"])
            for ln in invoice["lines"]
        )
        total = amounts + float(invoice["shipping"]) + float(invoice["fees"]) + float(invoice["tax"])
        assert float(invoice["total"]) == pytest.approx(total)
    sb.advance_clock(days=4)
    for po in pos:
        final = {s["status"] for s in _shipments(client, sb, po)}
        assert final <= {"delivered", "returned"}
        assert _invoice(client, sb, po).json()["status"] == ("credited" if "returned" in final else "paid")


def test_some_parcels_are_returned_and_credited(sb: SandboxInfo, client: httpx.Client) -> None:
    sku = _light(sb)
    pos = [f"RT-{i}" for i in range(40)]
    for po in pos:
        _submit(client, sb, _order(po, (sku, 1)))
    sb.advance_clock(hours=54)  # shipped at +20 h, in transit at +30 h, exceptions at +50 h
    seen = {s["status"] for po in pos for s in _shipments(client, sb, po)}
    assert seen == {"in_transit", "exception"}
    sb.advance_clock(days=5)
    statuses = {po: _invoice(client, sb, po).json()["status"] for po in pos}
    assert set(statuses.values()) == {"paid", "credited"}
    for po, status in statuses.items():
        returned = any(s["status"] == "returned" for s in _shipments(client, sb, po))
        assert returned == (status == "credited")


def test_an_order_cancelled_before_it_fully_ships_ships_nothing_more(
    sb: SandboxInfo, client: httpx.Client
) -> None:
    skus = _light_skus(sb, 3)
    pos = [f"CX-{i}" for i in range(12)]
    for po in pos:
        _submit(client, sb, _order(po, *[(s, 2) for s in skus]))
    cancel = lambda po: client.post(f"{sb.usdirect_admin}/orders/{po}/cancel")  # noqa: E731
    get = lambda po: client.get(f"{sb.usdirect_url}/v1/orders/{po}", headers=api(sb)).json()  # noqa: E731
    sb.advance_clock(hours=2)
    assert get(pos[0])["status"] == "processing"
    response = cancel(pos[0])
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert response.json()["updated_at"] == get(pos[0])["updated_at"]
    assert get(pos[0])["updated_at"].replace("Z", "+00:00") == sb.clock_now().isoformat()
    assert_error(cancel(pos[0]), 409, "not_cancellable")
    assert_error(cancel("NOPE"), 404, "order_not_found")
    sb.advance_clock(hours=19)  # first parcels: some orders are now partially shipped
    split = next(po for po in pos[1:] if get(po)["status"] == "partially_shipped")
    first = _shipments(client, sb, split)
    assert cancel(split).json()["status"] == "cancelled"
    sb.advance_clock(days=6)  # past every remaining shipment, invoice and payment
    assert get(pos[0])["status"] == get(split)["status"] == "cancelled"
    assert _shipments(client, sb, pos[0]) == []
    assert [s["shipment_id"] for s in _shipments(client, sb, split)] == [first[0]["shipment_id"]]
    assert _shipments(client, sb, split)[0]["status"] != "label_created"  # the parcel still travels
    for po in (pos[0], split):
        assert_error(_invoice(client, sb, po), 404, "invoice_not_found")
    shipped = next(po for po in pos if get(po)["status"] == "shipped")
    assert_error(cancel(shipped), 409, "not_cancellable")


def test_lifecycle_is_deterministic(sandbox_factory) -> None:
    results = []
    start = datetime(2026, 11, 20, 8, tzinfo=UTC)
    for _ in range(2):
        sb = sandbox_factory(rate_limit=0, start_time=start)
        with httpx.Client(timeout=30) as c:
            skus = _light_skus(sb, 2)
            for po in ("D-1", "D-2", "D-3"):
                _submit(c, sb, _order(po, *[(s, 3) for s in skus]))
            sb.advance_clock(days=3)
            body = c.get(
                f"{sb.usdirect_url}/v1/shipments", params={"updated_since": SINCE_EVER}, headers=api(sb)
            )
            results.append(body.json()["shipments"])
    assert results[0] == results[1] and results[0]


def test_shipments_list_pages_by_keyset(sb: SandboxInfo, client: httpx.Client) -> None:
    skus = _light_skus(sb, 2)
    for i in range(6):
        _submit(client, sb, _order(f"SH-{i}", *[(s, 2) for s in skus]))
    assert_error(client.get(f"{sb.usdirect_url}/v1/shipments", headers=api(sb)), 422, "validation_failed")
    for limit in (0, 501):
        response = client.get(
            f"{sb.usdirect_url}/v1/shipments",
            params={"updated_since": SINCE_EVER, "limit": limit},
            headers=api(sb),
        )
        assert_error(response, 422, "validation_failed")
    sb.advance_clock(days=2)

    def all_pages(since: str, change_after_first: bool = False) -> list[dict]:
        rows, cursor = [], None
        while True:
            params = {"updated_since": since, "limit": 2} | ({"cursor": cursor} if cursor else {})
            body = client.get(f"{sb.usdirect_url}/v1/shipments", params=params, headers=api(sb)).json()
            rows += body["shipments"]
            cursor = body["next_cursor"]
            if change_after_first:
                sb.advance_clock(days=3)  # every shipment moves on (new updated_at) while paging
                change_after_first = False
            if cursor is None:
                return rows

    every = all_pages(SINCE_EVER)
    ids = {s["shipment_id"] for s in every}
    assert len(every) == len(ids) >= 6
    cut = sorted({s["updated_at"] for s in every})[-1]  # orders submitted together change together
    recent = all_pages(cut)
    assert {s["shipment_id"] for s in recent} == {s["shipment_id"] for s in every if s["updated_at"] >= cut}
    assert 0 < len(recent) < len(every)
    moving = all_pages(SINCE_EVER, change_after_first=True)
    latest: dict[str, dict] = {}
    for s in moving:
        if s["shipment_id"] not in latest or s["updated_at"] >= latest[s["shipment_id"]]["updated_at"]:
            latest[s["shipment_id"]] = s
    assert set(latest) == ids
    assert all(s["status"] in ("delivered", "exception") for s in latest.values())


def test_unknown_order_lookups_are_404(sb: SandboxInfo, client: httpx.Client) -> None:
    assert_error(client.get(f"{sb.usdirect_url}/v1/orders/NOPE", headers=api(sb)), 404, "order_not_found")
    response = client.get(f"{sb.usdirect_url}/v1/orders/NOPE/shipments", headers=api(sb))
    assert_error(response, 404, "order_not_found")
    assert_error(_invoice(client, sb, "NOPE"), 404, "invoice_not_found")


# --- limits -------------------------------------------------------------------------------------


def test_api_rate_limit_per_token(sandbox_factory) -> None:
    sb = sandbox_factory(rate_limit=5)
    with httpx.Client(timeout=30) as c:
        with ThreadPoolExecutor(8) as pool:
            responses = list(
                pool.map(lambda _: c.get(f"{sb.usdirect_url}/v1/ping", headers=api(sb)), range(12))
            )
        limited = [r for r in responses if r.status_code == 429]
        assert sum(r.status_code == 200 for r in responses) == 5
        assert limited
        assert all(int(r.headers["Retry-After"]) >= 1 for r in limited)
        assert_error(limited[0], 429, "rate_limited")
        # The Reseller Token has its own budget.
        assert c.get(f"{sb.usdirect_url}/v1/reseller/ping", headers=reseller(sb)).status_code == 200
        time.sleep(1.1)
        assert c.get(f"{sb.usdirect_url}/v1/ping", headers=api(sb)).status_code == 200
    peak = sb.stats()["peak_rps"]
    assert peak["api_token"] >= 12 and peak["reseller_token"] == 1
    counts = sb.stats()["requests"]["GET /v1/ping"]
    assert counts["200"] == 6 and counts["429"] == len(limited)


def test_feed_download_limit(sandbox_factory) -> None:
    sb = sandbox_factory(feed_limit=1)
    with httpx.Client(timeout=30) as c:
        first = c.get(sb.feed_url)
        assert first.status_code == 200
        # Conditional requests that end in 304 and HEAD are not downloads.
        assert c.get(sb.feed_url, headers={"If-None-Match": first.headers["etag"]}).status_code == 304
        assert c.head(sb.feed_url).status_code == 200
        second = c.get(sb.feed_url)
        assert_error(second, 429, "rate_limited")
        assert 50 <= int(second.headers["Retry-After"]) <= 60


def test_platform_is_reachable_alongside(sb: SandboxInfo, client: httpx.Client) -> None:
    assert client.get(f"{sb.flxpoint_url}/ping", headers=platform(sb)).status_code == 200


def test_reset_restores_the_start_state(sb: SandboxInfo, client: httpx.Client) -> None:
    etag = client.head(sb.feed_url).headers["etag"]
    _submit(client, sb, _order("RS-1", (_light(sb), 1)))
    sb.next_catalog_version()
    sb.advance_clock(days=1)
    start = sb.clock_now() - timedelta(days=1)
    sb.reset()
    assert sb.stats() == {"requests": {}, "peak_rps": {}}
    assert sb.creation_counts() == {}
    assert sb.clock_now() == start
    assert client.head(sb.feed_url).headers["etag"] == etag
    assert sb.catalog_truth()["version"] == 0

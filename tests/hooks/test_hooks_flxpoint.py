"""FlxpointHook against the sandbox platform over real HTTP."""

from __future__ import annotations

import pytest

from tests.support.hooks import invoice_body, shipment_body
from usdirect.hooks.errors import AuthenticationError, NotFoundError, ValidationError
from usdirect.hooks.flxpoint import FlxpointHook

# The platform allows 2 req/s; functional tests run it (and the hook's pacing) at 20 to stay fast.
FAST_PLATFORM = {"catalog_size": 300, "platform_rate_limit": 20}


def test_ping_and_variants(sandbox_factory, use_sandbox) -> None:
    info = sandbox_factory(**FAST_PLATFORM)
    use_sandbox(info, flxpoint={"rate_limit": 20})
    hook = FlxpointHook()
    assert hook.test_connection() == (True, "API Token OK (account 1, token type source)")

    everything = [v for page in hook.iter_variants(page_size=7) for v in page]
    skus = [v["sku"] for v in everything]
    assert skus == sorted(skus)
    assert len(skus) == len(set(skus)) == len(info.platform("variants"))

    assert len(skus) > 20
    wanted = [f"USD-NOT-THERE-{i}" for i in range(10)] + skus
    pages = list(hook.iter_variants(skus=wanted, page_size=500))
    assert [len(p) for p in pages] == [40, len(skus) - 40]  # queried 50 skus at a time
    assert sorted(v["sku"] for p in pages for v in p) == skus
    assert list(hook.iter_variants(skus=[])) == []

    answer = hook.update_variants(
        [
            {"sku": skus[0], "quantity": 3, "modifyQuantity": "update"},
            {"sku": "USD-NOT-THERE", "quantity": 1, "modifyQuantity": "update"},
        ]
    )
    assert answer == {"updated": 1, "notFound": ["USD-NOT-THERE"]}
    assert next(hook.iter_variants(skus=[skus[0]]))[0]["quantity"] == 3
    with pytest.raises(ValueError, match="at most 50 variants per call"):
        hook.update_variants([{"sku": f"USD-{i}"} for i in range(51)])
    with pytest.raises(ValidationError, match=r"\[0\]\.quantity"):
        hook.update_variants([{"sku": skus[0], "quantity": -1, "modifyQuantity": "update"}])

    parent = {
        "sku": "USD-NEW-1",
        "title": "New",
        "manufacturer": "Acme",
        "variants": [{"sku": "USD-NEW-1", "title": "New", "cost": 1.5, "quantity": 2}],
    }
    assert hook.create_parents([parent]) == {"created": 1, "updated": 0}
    assert hook.create_parents([parent]) == {"created": 0, "updated": 1}
    with pytest.raises(ValueError, match="at most 20 parents per call"):
        hook.create_parents([parent] * 21)


def test_fulfillment_requests_can_be_worked_while_iterating(sandbox_factory, use_sandbox) -> None:
    info = sandbox_factory(**FAST_PLATFORM)
    use_sandbox(info, flxpoint={"rate_limit": 20})
    hook = FlxpointHook()
    expected = [
        fr["id"]
        for fr in info.platform("fulfillment-requests")
        if fr["status"] == "Unprocessed" and fr["sourceName"] == "US Direct"
    ]
    seen = []
    for page in hook.iter_fulfillment_requests(page_size=5):
        assert len(page) <= 5
        for fr in page:
            seen.append(fr["id"])
            if fr.get("sandboxDefect") or fr["items"][0]["sku"] == "USD-10099999":
                hook.flag_fulfillment_request(fr["id"], "Failed", "unknown SKU")
            else:
                hook.mark_processed(fr["id"], f"UD-{fr['id']}")
    assert seen == expected  # nothing skipped although statuses changed under the pages
    assert list(hook.iter_fulfillment_requests()) == []
    records = {fr["id"]: fr for fr in info.platform("fulfillment-requests")}
    assert records[expected[0]]["status"] == "Processed"
    hook.mark_processed(expected[0], None)  # idempotent
    other = list(hook.iter_fulfillment_requests(source_name="Acme Wholesale"))
    assert [len(p) for p in other] == [2]


def test_shipments_and_invoices_report_duplicates_with_existing_id(sandbox_factory, use_sandbox) -> None:
    info = sandbox_factory(**FAST_PLATFORM)
    use_sandbox(info, flxpoint={"rate_limit": 20})
    hook = FlxpointHook()
    fr = info.platform("fulfillment-requests")[0]
    number, sku = fr["fulfillmentRequestNumber"], fr["items"][0]["sku"]

    shipment_id, created = hook.create_shipment(shipment_body(number, "1ZTEST0001", sku))
    assert created
    assert hook.create_shipment(shipment_body(number, "1ZTEST0001", sku)) == (shipment_id, False)
    hook.update_shipment_status(shipment_id, "Delivered")
    stored = {s["id"]: s for s in info.platform("shipments")}[shipment_id]
    assert stored["shipment"]["status"] == "Delivered"
    with pytest.raises(NotFoundError):
        hook.create_shipment(shipment_body("NO-SUCH-FR", "1ZTEST0002", sku))

    invoice_id, created = hook.create_source_invoice(invoice_body(number, "INV-T-1"))
    assert created
    assert hook.create_source_invoice(invoice_body(number, "INV-T-1")) == (invoice_id, False)
    hook.update_source_invoice_status(invoice_id, "Paid")
    assert {i["id"]: i for i in info.platform("source-invoices")}[invoice_id]["invoiceStatus"] == "Paid"


def test_wrong_platform_token(sandbox, use_sandbox) -> None:
    use_sandbox(sandbox, flxpoint={"password": "not-the-token"})
    hook = FlxpointHook()
    with pytest.raises(AuthenticationError) as err:
        next(hook.iter_variants())
    assert (err.value.credential, err.value.status) == ("API Token", 401)
    assert hook.test_connection() == (
        False,
        "API Token rejected (401): re-enter the API Token on the flxpoint connection 'flxpoint_default'; "
        "every delivery to the platform needs it",
    )

"""UsDirectHook against the sandbox over real HTTP."""

from __future__ import annotations

import csv
from datetime import timedelta
from pathlib import Path

import pytest

from sandbox.faults import FaultKind
from tests.support.hooks import active_sku, order_payload
from usdirect.hooks.errors import (
    AuthenticationError,
    ConnectionConfigError,
    DuplicateError,
    OutcomeUnknownError,
    RateLimitExhaustedError,
    ValidationError,
)
from usdirect.hooks.feed import FeedValidators
from usdirect.hooks.usdirect import UsDirectHook


def test_pings_and_feed_head(sandbox, use_sandbox) -> None:
    use_sandbox(sandbox)
    hook = UsDirectHook()
    assert hook.ping()["account_id"] == "A-1001"
    assert hook.reseller_ping() == {"reseller_id": "R-2002"}
    head = hook.head_feed()
    assert head["status"] == 200
    assert head["content_length"] > 0
    assert head["etag"]
    assert "feed_url" not in head
    assert hook.test_connection() == (
        True,
        "API Token OK (account A-1001 Acme Outdoor)\n"
        f"Feed URL OK ({head['content_length']:,} bytes)\n"
        "Reseller Token OK (reseller R-2002)",
    )


def test_download_feed_is_complete_plain_csv_then_304(sandbox, use_sandbox, tmp_path: Path) -> None:
    use_sandbox(sandbox)
    hook = UsDirectHook()
    first = hook.download_feed(tmp_path / "feed.csv")
    assert not first.not_modified
    assert first.path == tmp_path / "feed.csv"
    raw = first.path.read_bytes()
    assert first.bytes == len(raw)
    assert raw.startswith(b"sku,title,")  # gunzipped on the way
    with first.path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    truth = sandbox.catalog_truth()
    assert len(rows) == len(truth["rows"]) + len(truth["dirty_rows"])
    assert {r["sku"] for r in rows} >= {r["sku"] for r in truth["rows"]}
    assert first.validators.etag and first.validators.last_modified
    assert not list(tmp_path.glob("*.part"))

    again = hook.download_feed(tmp_path / "again.csv", first.validators)
    assert again.not_modified
    assert (again.path, again.bytes) == (None, 0)
    assert again.validators == first.validators
    assert not (tmp_path / "again.csv").exists()

    stale = hook.download_feed(tmp_path / "stale.csv", FeedValidators(etag='"old"'))
    assert not stale.not_modified
    assert stale.path.read_bytes() == raw


def test_inventory_changes_pages_cover_catalog_once(sandbox, use_sandbox) -> None:
    use_sandbox(sandbox)
    since = sandbox.clock_now() - timedelta(days=365)
    pages = list(UsDirectHook().iter_inventory_changes(since, limit=300))
    assert len(pages) == 7
    skus = [row["sku"] for page in pages for row in page]
    assert len(skus) == len(set(skus)) == len(sandbox.catalog_truth()["rows"])
    with pytest.raises(ValueError, match="limit must be between 1 and 1000"):
        next(UsDirectHook().iter_inventory_changes(since, limit=5000))


def test_lookups_of_unknown_po(sandbox, use_sandbox) -> None:
    use_sandbox(sandbox)
    hook = UsDirectHook()
    assert hook.get_order("NEVER-SENT-1") is None
    assert hook.get_invoice("NEVER-SENT-1") is None
    assert hook.get_order_shipments("NEVER-SENT-1") == []


def test_order_lifecycle_duplicate_validation_and_lost_answer(sandbox_factory, use_sandbox) -> None:
    info = sandbox_factory(catalog_size=300)
    use_sandbox(info)
    hook = UsDirectHook()
    sku = active_sku(info)

    created = hook.submit_order(order_payload("HK-1", sku))
    assert created["po_number"] == "HK-1"
    assert created["order_id"].startswith("UD-")
    with pytest.raises(DuplicateError) as dup:
        hook.submit_order(order_payload("HK-1", sku))
    assert dup.value.existing_id == created["order_id"]

    with pytest.raises(ValidationError) as bad:
        hook.submit_order(order_payload("HK-2", sku, address1="PO Box 12", state="AK"))
    fields = {d["field"] for d in bad.value.details}
    assert {"ship_to.state"} <= fields
    assert "ship_to.state" in str(bad.value)
    assert hook.get_order("HK-2") is None

    # The server commits, then drops the connection: the hook must not resubmit on its own.
    info.set_faults([{"endpoint": "POST /v1/orders", "kind": FaultKind.COMMIT_DROP, "times": 1}])
    with pytest.raises(OutcomeUnknownError, match="Look it up before submitting again"):
        hook.submit_order(order_payload("HK-3", sku))
    assert hook.get_order("HK-3")["po_number"] == "HK-3"
    assert info.creation_counts()["HK-3"] == {"submitted": 1, "created": 1}

    # A 429 is known not to be processed: retried, and the order is created exactly once.
    info.set_faults(
        [{"endpoint": "POST /v1/orders", "kind": FaultKind.HTTP_429, "times": 2, "retry_after": 0}]
    )
    assert hook.submit_order(order_payload("HK-4", sku))["po_number"] == "HK-4"
    assert info.creation_counts()["HK-4"]["created"] == 1
    info.clear_faults()

    since = info.clock_now()
    info.advance_clock(days=6)
    shipments = hook.get_order_shipments("HK-1")
    assert shipments
    assert all(s["po_number"] == "HK-1" for s in shipments)
    listed = [s for page in hook.iter_shipments(since - timedelta(hours=1), limit=2) for s in page]
    assert {s["shipment_id"] for s in shipments} <= {s["shipment_id"] for s in listed}
    assert len({s["shipment_id"] for s in listed}) == len(listed)
    invoice = hook.get_invoice("HK-1")
    assert invoice["po_number"] == "HK-1"
    assert invoice["invoice_number"]


def test_wrong_credentials_are_named_and_not_retried(sandbox, use_sandbox) -> None:
    use_sandbox(sandbox, usdirect={"password": "wrong-api-token", "reseller_token": "wrong-reseller"})
    hook = UsDirectHook()
    before = sandbox.stats()["requests"].get("GET /v1/ping", {}).get("401", 0)
    with pytest.raises(AuthenticationError) as api:
        hook.ping()
    assert (api.value.credential, api.value.status) == ("API Token", 401)
    assert "re-enter the API Token on the usdirect connection 'usdirect_default'" in str(api.value)
    assert sandbox.stats()["requests"]["GET /v1/ping"]["401"] == before + 1
    with pytest.raises(AuthenticationError) as reseller:
        hook.get_invoice("ANY-1")
    assert reseller.value.credential == "Reseller Token"

    ok, message = hook.test_connection()
    assert not ok
    lines = message.splitlines()
    assert lines[0].startswith("API Token rejected (401): re-enter the API Token on the usdirect connection")
    assert lines[0].endswith("every US Direct operation needs it")
    assert lines[1].startswith("Feed URL OK")
    assert lines[2] == (
        "Reseller Token rejected (401): re-enter the Reseller Token on the usdirect connection "
        "'usdirect_default'; Get Invoice needs it"
    )


def test_forbidden_tokens_and_bad_feed_url(sandbox, use_sandbox) -> None:
    use_sandbox(
        sandbox,
        usdirect={
            "password": sandbox.readonly_api_token,
            "reseller_token": sandbox.other_reseller_token,
            "feed_url": sandbox.feed_url.replace("key=", "key=x"),
        },
    )
    hook = UsDirectHook()
    with pytest.raises(AuthenticationError) as forbidden:
        hook.submit_order(order_payload("RO-1", "100000"))
    assert forbidden.value.status == 403
    assert "API Token has no access (403)" in str(forbidden.value)
    ok, message = hook.test_connection()
    assert not ok
    assert message.splitlines()[1] == (
        "Feed URL rejected (401): re-enter the Feed URL on the usdirect connection 'usdirect_default'; "
        "Get Inventory needs it"
    )


def test_missing_fields_say_which_and_where(sandbox, use_sandbox) -> None:
    use_sandbox(sandbox, usdirect={"password": "", "feed_url": "", "reseller_token": ""})
    ok, message = UsDirectHook().test_connection()
    assert not ok
    assert message.splitlines() == [
        "API Token is empty on the usdirect connection 'usdirect_default': enter the API Token in the "
        "password field; every US Direct operation needs it",
        "Feed URL is empty on the usdirect connection 'usdirect_default': enter it in the Feed URL field; "
        "Get Inventory needs it",
        "Reseller Token is empty on the usdirect connection 'usdirect_default': enter it in the Reseller "
        "Token field; Get Invoice needs it",
    ]
    use_sandbox(sandbox, usdirect={"rate_limit": "fast"})
    with pytest.raises(ConnectionConfigError, match="'rate_limit' on the usdirect connection"):
        UsDirectHook().ping()


def test_prefixed_extra_fields_are_read(sandbox, use_sandbox) -> None:
    use_sandbox(
        sandbox,
        usdirect={
            "feed_url": None,
            "reseller_token": None,
            "extra__usdirect__feed_url": sandbox.feed_url,
            "extra__usdirect__reseller_token": sandbox.reseller_token,
        },
    )
    assert UsDirectHook().test_connection()[0]


def test_feed_rate_limit_fails_typed_after_budget(sandbox_factory, use_sandbox, tmp_path: Path) -> None:
    info = sandbox_factory(catalog_size=200, feed_limit=1)
    use_sandbox(info, usdirect={"max_retry_time": 3})
    hook = UsDirectHook()
    assert not hook.download_feed(tmp_path / "a.csv").not_modified
    with pytest.raises(RateLimitExhaustedError, match=r"US Direct feed download gave up .* HTTP 429"):
        hook.download_feed(tmp_path / "b.csv")
    assert not (tmp_path / "b.csv").exists()
    assert not list(tmp_path.glob("*.part"))

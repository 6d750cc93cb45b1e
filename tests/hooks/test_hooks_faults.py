"""Every fault kind injected at 20% on every endpoint: each call completes correctly.

One workload touches every hook method class (pings, feed HEAD and download, keyset and page
paging, order submission with reconciliation, lookups, idempotent platform writes). It runs
fault-free once for the expected answers, then once per fault kind, and must give the same
answers. A second group of tests drives the budget to exhaustion and checks the typed error.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from sandbox.faults import FaultKind
from sandbox.runner import SandboxInfo, start_sandbox
from tests.support.hooks import active_sku, order_payload, set_connections, shipment_body
from usdirect.hooks.errors import (
    DuplicateError,
    OutcomeUnknownError,
    RateLimitExhaustedError,
    TransientExhaustedError,
)
from usdirect.hooks.flxpoint import FlxpointHook
from usdirect.hooks.usdirect import UsDirectHook

KINDS = list(FaultKind)
FAST_LIMITS = {"rate_limit": 50}


@pytest.fixture(scope="module")
def faulty() -> Iterator[SandboxInfo]:
    with start_sandbox(
        catalog_size=500, seed=11, feed_limit=0, rate_limit=50, platform_rate_limit=50
    ) as info:
        yield info


def submit_reconciled(hook: UsDirectHook, payload: dict) -> str:
    """What the orders pipeline does: never resubmit before asking whether the PO exists."""
    for _ in range(10):
        try:
            return hook.submit_order(payload)["order_id"]
        except DuplicateError as dup:
            assert dup.existing_id
            return dup.existing_id
        except OutcomeUnknownError:
            order = hook.get_order(payload["po_number"])
            if order is not None:
                return order["order_id"]
    raise AssertionError("order outcome never settled")


def workload(info: SandboxInfo, tmp_path: Path, tag: str) -> dict[str, Any]:
    """Each kind of call several times, so that a 20% fault rate meets every one of them."""
    ud, fx = UsDirectHook(), FlxpointHook()
    since = info.clock_now() - timedelta(days=365)
    fr = info.platform("fulfillment-requests")[0]
    sku = active_sku(info)
    pos = [f"FLT-{tag}-{i}" for i in range(4)]
    order_ids = [submit_reconciled(ud, order_payload(po, sku)) for po in pos]
    feeds = [ud.download_feed(tmp_path / f"feed-{tag}-{i}.csv") for i in range(3)]
    first_variant = next(fx.iter_variants(page_size=10))[0]["sku"]
    shipments = []
    for i in range(3):
        body = shipment_body(fr["fulfillmentRequestNumber"], f"1Z-{tag}-{i}", fr["items"][0]["sku"])
        first_id, _ = fx.create_shipment(body)
        shipments.append(fx.create_shipment(body) == (first_id, False))
    return {
        "ping": [ud.ping() for _ in range(3)],
        "reseller": [ud.reseller_ping() for _ in range(3)],
        "head": [ud.head_feed()["content_length"] for _ in range(3)],
        "feed": {hashlib.sha256(f.path.read_bytes()).hexdigest() for f in feeds},
        "inventory": sorted(r["sku"] for p in ud.iter_inventory_changes(since, limit=100) for r in p),
        "orders": [
            (ud.get_order(po)["order_id"] == oid, info.creation_counts()[po]["created"])
            for po, oid in zip(pos, order_ids, strict=True)
        ],
        "no_order": [ud.get_order("NEVER-1"), ud.get_invoice("NEVER-1")],
        "variants": [v["sku"] for p in fx.iter_variants(page_size=10) for v in p],
        "frs": [f["id"] for p in fx.iter_fulfillment_requests(page_size=10) for f in p],
        "update": [
            fx.update_variants([{"sku": first_variant, "quantity": q, "modifyQuantity": "update"}])
            for q in (4, 5)
        ],
        "shipments": shipments,
    }


# One rule per endpoint family: each draws from its own random stream, so rarely called
# endpoints meet faults too rather than inheriting the stream position of busy ones.
ENDPOINTS = [
    "GET /v1/ping",
    "GET /v1/reseller/*",
    "HEAD /feeds/*",
    "GET /feeds/*",
    "GET /v1/inventory",
    "POST /v1/orders",
    "GET /v1/orders/*",
    "GET /v1/invoices/*",
    "* /inventory/*",
    "GET /fulfillment-requests",
    "POST /shipments",
]


def fired_on(info: SandboxInfo, kind: FaultKind) -> set[str]:
    return {
        endpoint
        for server in ("usdirect", "flxpoint")
        for endpoint, outcomes in info.stats(server)["requests"].items()
        if outcomes.get(kind.counter)
    }


@pytest.fixture(scope="module")
def expected(faulty: SandboxInfo, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    with pytest.MonkeyPatch.context() as mp:
        set_connections(mp, faulty, usdirect=FAST_LIMITS, flxpoint=FAST_LIMITS)
        return workload(faulty, tmp_path_factory.mktemp("baseline"), "base")


@pytest.mark.parametrize("kind", KINDS)
def test_every_call_completes_under_faults(
    faulty, use_sandbox, expected, kind: FaultKind, tmp_path: Path
) -> None:
    use_sandbox(faulty, usdirect=FAST_LIMITS, flxpoint=FAST_LIMITS)
    faulty.set_faults([{"endpoint": e, "kind": kind, "probability": 0.2} for e in ENDPOINTS])
    try:
        got = workload(faulty, tmp_path, kind)
        fired = fired_on(faulty, kind)
    finally:
        faulty.clear_faults()
    assert len(fired) >= 4, f"fault {kind} only met {sorted(fired)}: the test proves too little"
    assert got == expected
    assert got["orders"] == [(True, 1)] * 4  # each created exactly once despite lost answers
    assert not list(tmp_path.glob("*.part"))


@pytest.mark.parametrize("kind", KINDS)
def test_feed_and_submission_meet_each_fault(faulty, use_sandbox, kind: FaultKind, tmp_path: Path) -> None:
    """The two calls where a mistake costs most, with the fault guaranteed to hit them."""
    use_sandbox(faulty, usdirect=FAST_LIMITS)
    ud = UsDirectHook()
    clean = ud.download_feed(tmp_path / "clean.csv").path.read_bytes()
    faulty.set_faults(
        [
            {"endpoint": "GET /feeds/*", "kind": kind, "times": 2},
            {"endpoint": "POST /v1/orders", "kind": kind, "times": 1},
        ]
    )
    try:
        assert ud.download_feed(tmp_path / "faulty.csv").path.read_bytes() == clean
        po = f"ONE-{kind}"
        order_id = submit_reconciled(ud, order_payload(po, active_sku(faulty)))
    finally:
        faulty.clear_faults()
    deadline = time.monotonic() + 5  # a `slow` request is counted when the server finishes it
    while not {"GET /feeds/inventory.csv", "POST /v1/orders"} <= fired_on(faulty, kind):
        assert time.monotonic() < deadline, f"fault {kind} did not hit both calls"
        time.sleep(0.1)
    assert ud.get_order(po)["order_id"] == order_id
    assert faulty.creation_counts()[po]["created"] == 1


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        (FaultKind.HTTP_503, TransientExhaustedError),
        (FaultKind.RESET, TransientExhaustedError),
        (FaultKind.HTTP_429, RateLimitExhaustedError),
    ],
)
def test_budget_exhaustion_is_typed_and_bounded(faulty, use_sandbox, kind: FaultKind, error: type) -> None:
    use_sandbox(faulty, usdirect={**FAST_LIMITS, "max_attempts": 4})
    faulty.set_faults([{"endpoint": "GET /v1/ping", "kind": kind, "retry_after": 0}])
    before = faulty.stats()["requests"].get("GET /v1/ping", {}).get(kind.counter, 0)
    try:
        with pytest.raises(error, match=r"US Direct GET /v1/ping gave up after 4 attempt\(s\)") as exc:
            UsDirectHook().ping()
        after = faulty.stats()["requests"]["GET /v1/ping"][kind.counter]
    finally:
        faulty.clear_faults()
    assert after - before == 4
    assert "max_attempts" in str(exc.value) or "rate_limit" in str(exc.value)


def test_total_time_cap_stops_retries(faulty, use_sandbox) -> None:
    use_sandbox(faulty, usdirect={**FAST_LIMITS, "max_attempts": 50, "max_retry_time": 1.5})
    faulty.set_faults([{"endpoint": "GET /v1/ping", "kind": FaultKind.HTTP_429, "retry_after": 1}])
    try:
        with pytest.raises(RateLimitExhaustedError, match="HTTP 429"):
            UsDirectHook().ping()
    finally:
        faulty.clear_faults()


def test_submission_is_not_retried_after_5xx(faulty, use_sandbox) -> None:
    use_sandbox(faulty, usdirect=FAST_LIMITS)
    faulty.set_faults([{"endpoint": "POST /v1/orders", "kind": FaultKind.HTTP_503, "after": True}])
    try:
        with pytest.raises(OutcomeUnknownError, match="HTTP 503"):
            UsDirectHook().submit_order(order_payload("ONCE-1", active_sku(faulty)))
    finally:
        faulty.clear_faults()
    assert faulty.creation_counts()["ONCE-1"] == {"submitted": 1, "created": 1}


def test_retry_after_is_honoured(faulty, use_sandbox) -> None:
    use_sandbox(faulty, usdirect=FAST_LIMITS)  # backoffs of a few ms: only Retry-After makes it wait
    faulty.set_faults(
        [{"endpoint": "GET /v1/ping", "kind": FaultKind.HTTP_429, "times": 1, "retry_after": 1}]
    )
    started = time.monotonic()
    try:
        assert UsDirectHook().ping()["account_id"] == "A-1001"
    finally:
        faulty.clear_faults()
    assert time.monotonic() - started >= 1.0

"""Fault injection: rule parsing, seeded replay, and every fault kind as a real client sees it."""

from __future__ import annotations

import httpx
import pytest

from sandbox.faults import FaultInjector, FaultKind, parse_rule, rule_from_dict
from sandbox.runner import SandboxInfo
from tests.support.sandbox_api import api, assert_error, platform

TRANSPORT_ERRORS = (httpx.ReadError, httpx.RemoteProtocolError)


def test_parse_rule() -> None:
    rule = parse_rule("POST /v1/orders 503 times=2 skip=1 retry_after=4 probability=0.5")
    assert (rule.endpoint, rule.kind, rule.times, rule.skip, rule.retry_after, rule.probability) == (
        "POST /v1/orders",
        FaultKind.HTTP_503,
        2,
        1,
        4,
        0.5,
    )
    assert parse_rule("GET /feeds/* truncate fraction=0.25").fraction == 0.25
    assert parse_rule("POST /v1/orders commit_drop").after is True
    assert parse_rule("POST /v1/orders 502 after=true").after is True


@pytest.mark.parametrize(
    "spec",
    [
        "GET /v1/ping",
        "GET /v1/ping explode",
        "GET v1/ping 500",
        "GET /v1/ping 500 times",
        "GET /v1/ping 500 color=red",
        "GET /v1/ping 500 probability=2",
        "GET /v1/ping truncate fraction=1",
    ],
)
def test_parse_rule_rejects_bad_specs(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_rule(spec)


def _decisions(seed: int) -> list[bool]:
    injector = FaultInjector(
        seed, [rule_from_dict({"endpoint": "GET /v1/*", "kind": FaultKind.HTTP_500, "probability": 0.5})]
    )
    return [injector.decide("GET", "/v1/ping") is not None for _ in range(60)]


def test_probabilistic_rules_replay_per_seed() -> None:
    assert _decisions(1) == _decisions(1)
    assert _decisions(1) != _decisions(2)
    assert 10 < sum(_decisions(1)) < 50


def test_times_skip_and_matching() -> None:
    injector = FaultInjector(0, [parse_rule("GET /v1/orders/*/shipments 500 times=2 skip=1")])
    outcomes = [injector.decide("GET", "/v1/orders/P1/shipments") is not None for _ in range(5)]
    assert outcomes == [False, True, True, False, False]
    assert injector.decide("GET", "/v1/orders/P1") is None
    assert injector.decide("POST", "/v1/orders/P1/shipments") is None


# --- over HTTP ----------------------------------------------------------------------------------


def _ping(client: httpx.Client, sb: SandboxInfo) -> httpx.Response:
    return client.get(f"{sb.usdirect_url}/v1/ping", headers=api(sb))


@pytest.mark.parametrize("kind", [k for k in FaultKind if k.status is not None])
def test_status_faults(sb: SandboxInfo, client: httpx.Client, kind: FaultKind) -> None:
    status = kind.status
    rule = {"endpoint": "GET /v1/ping", "kind": kind, "times": 1}
    if status == 503:
        rule["retry_after"] = 3
    sb.set_faults([rule])
    response = _ping(client, sb)
    assert_error(response, status, "rate_limited" if status == 429 else "server_error")
    expected_retry = {429: "1", 503: "3"}.get(status)
    assert response.headers.get("Retry-After") == expected_retry
    assert _ping(client, sb).status_code == 200
    counts = sb.stats()["requests"]["GET /v1/ping"]
    assert counts == {kind.counter: 1, str(status): 1, "200": 1}


def test_reset_is_a_transport_error(sb: SandboxInfo, client: httpx.Client) -> None:
    sb.set_faults([{"endpoint": "GET /v1/ping", "kind": FaultKind.RESET, "times": 1}])
    with pytest.raises(TRANSPORT_ERRORS):
        _ping(client, sb)
    assert _ping(client, sb).status_code == 200
    assert sb.stats()["requests"]["GET /v1/ping"] == {FaultKind.RESET.counter: 1, "200": 1}


def test_slow_response(sb: SandboxInfo, client: httpx.Client) -> None:
    sb.set_faults([{"endpoint": "GET /v1/ping", "kind": FaultKind.SLOW, "delay": 1.0, "times": 2}])
    with pytest.raises(httpx.ReadTimeout):
        client.get(f"{sb.usdirect_url}/v1/ping", headers=api(sb), timeout=0.3)
    assert client.get(f"{sb.usdirect_url}/v1/ping", headers=api(sb), timeout=5).status_code == 200


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
def test_truncated_feed(sb: SandboxInfo, client: httpx.Client, encoding: str) -> None:
    headers = {"Accept-Encoding": encoding}
    full = client.head(sb.feed_url, headers=headers)
    length = int(full.headers["content-length"])
    sb.set_faults(
        [{"endpoint": "GET /feeds/inventory.csv", "kind": FaultKind.TRUNCATE, "times": 1, "fraction": 0.4}]
    )
    received = bytearray()
    with (
        pytest.raises(httpx.RemoteProtocolError),
        client.stream("GET", sb.feed_url, headers=headers) as response,
    ):
        assert response.status_code == 200
        assert int(response.headers["content-length"]) == length
        for chunk in response.iter_raw():
            received += chunk
    assert len(received) == int(length * 0.4)
    whole = client.get(sb.feed_url, headers=headers)
    assert whole.status_code == 200 and int(whole.headers["content-length"]) == length
    assert bytes(received) == _raw(sb, headers)[: len(received)]


def _raw(sb: SandboxInfo, headers: dict[str, str]) -> bytes:
    with httpx.Client(timeout=30) as c, c.stream("GET", sb.feed_url, headers=headers) as r:
        return b"".join(r.iter_raw())


def test_truncated_json_body(sb: SandboxInfo, client: httpx.Client) -> None:
    sb.set_faults([{"endpoint": "GET /v1/inventory", "kind": FaultKind.TRUNCATE, "times": 1}])
    params = {"updated_since": "2000-01-01T00:00:00Z", "limit": 50}
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(f"{sb.usdirect_url}/v1/inventory", params=params, headers=api(sb))
    assert (
        len(client.get(f"{sb.usdirect_url}/v1/inventory", params=params, headers=api(sb)).json()["items"])
        == 50
    )


def _order(sb: SandboxInfo, po: str) -> dict:
    sku = next(
        r["sku"]
        for r in sb.catalog_truth()["rows"]
        if r["status"] == "active" and r["quantity"] >= 5 and float(r["weight_lb"]) < 5
    )
    return {
        "po_number": po,
        "order_date": "2026-11-20",
        "shipping_code": "UPS-GND",
        "ship_to": {
            "name": "Dana Reyes",
            "address1": "123 Main St",
            "city": "Austin",
            "state": "TX",
            "postal_code": "78701",
            "country": "US",
        },
        "lines": [{"line_number": 1, "item_number": sku, "quantity": 1}],
    }


def test_commit_then_drop(sb: SandboxInfo, client: httpx.Client) -> None:
    sb.set_faults([{"endpoint": "POST /v1/orders", "kind": FaultKind.COMMIT_DROP, "times": 1}])
    body = _order(sb, "CD-1")
    with pytest.raises(TRANSPORT_ERRORS):
        client.post(f"{sb.usdirect_url}/v1/orders", json=body, headers=api(sb))
    assert sb.creation_counts()["CD-1"] == {"submitted": 1, "created": 1}
    order = client.get(f"{sb.usdirect_url}/v1/orders/CD-1", headers=api(sb)).json()
    retry = client.post(f"{sb.usdirect_url}/v1/orders", json=body, headers=api(sb))
    assert assert_error(retry, 409, "duplicate_po")["details"][0]["order_id"] == order["order_id"]
    assert sb.stats()["requests"]["POST /v1/orders"] == {FaultKind.COMMIT_DROP.counter: 1, "409": 1}


def test_status_after_commit(sb: SandboxInfo, client: httpx.Client) -> None:
    sb.set_faults([{"endpoint": "POST /v1/orders", "kind": FaultKind.HTTP_502, "after": True, "times": 1}])
    before = client.post(f"{sb.usdirect_url}/v1/orders", json=_order(sb, "AC-1"), headers=api(sb))
    assert_error(before, 502, "server_error")
    assert sb.creation_counts()["AC-1"]["created"] == 1
    sb.set_faults([{"endpoint": "POST /v1/orders", "kind": FaultKind.HTTP_502, "times": 1}])
    not_processed = client.post(f"{sb.usdirect_url}/v1/orders", json=_order(sb, "AC-2"), headers=api(sb))
    assert_error(not_processed, 502, "server_error")
    assert "AC-2" not in sb.creation_counts()


def test_platform_faults_and_admin_listing(sb: SandboxInfo, client: httpx.Client) -> None:
    rules = [
        {"endpoint": "GET /fulfillment-requests", "kind": FaultKind.HTTP_503, "times": 1},
        {"endpoint": "PUT /inventory/*", "kind": FaultKind.RESET, "times": 1},
        {"endpoint": "GET /v1/ping", "kind": FaultKind.HTTP_500, "times": 1},
    ]
    sb.set_faults(rules)
    listed = client.get(f"{sb.flxpoint_admin}/faults").json()["rules"]
    assert [r["endpoint"] for r in listed] == ["GET /fulfillment-requests", "PUT /inventory/*"]
    assert [r["endpoint"] for r in client.get(f"{sb.usdirect_admin}/faults").json()["rules"]] == [
        "GET /v1/ping"
    ]
    assert_error(
        client.get(f"{sb.flxpoint_url}/fulfillment-requests", headers=platform(sb)), 503, "server_error"
    )
    with pytest.raises(TRANSPORT_ERRORS):
        client.put(f"{sb.flxpoint_url}/inventory/variants", json=[], headers=platform(sb))
    assert (
        client.put(f"{sb.flxpoint_url}/inventory/variants", json=[], headers=platform(sb)).status_code == 200
    )
    assert client.get(f"{sb.flxpoint_admin}/faults").json()["rules"][0]["fired"] == 1
    sb.clear_faults()
    assert client.get(f"{sb.flxpoint_admin}/faults").json()["rules"] == []
    assert _ping(client, sb).status_code == 200


def test_admin_rejects_bad_rules(sb: SandboxInfo, client: httpx.Client) -> None:
    for rule in (
        {"endpoint": "GET /v1/ping", "kind": "boom"},
        {"endpoint": "GET /v1/ping", "kind": FaultKind.HTTP_500, "x": 1},
    ):
        response = client.post(f"{sb.usdirect_admin}/faults", json={"rules": [rule]})
        assert_error(response, 422, "validation_failed")


def test_cli_faults_replay_identically(sandbox_factory) -> None:
    """Rules given as flags, drawn from the seed: two runs with the same seed fail the same requests."""
    specs = ["GET /v1/ping 500 probability=0.5", "GET /fulfillment-requests 429 times=1"]
    runs = []
    for _ in range(2):
        sb = sandbox_factory(rate_limit=0, platform_rate_limit=0, faults=specs, seed=9)
        with httpx.Client(timeout=30) as c:
            runs.append([_ping(c, sb).status_code for _ in range(30)])
            limited = c.get(f"{sb.flxpoint_url}/fulfillment-requests", headers=platform(sb))
            assert limited.status_code == 429 and limited.headers["Retry-After"] == "1"
            assert c.get(f"{sb.flxpoint_url}/fulfillment-requests", headers=platform(sb)).status_code == 200
    assert runs[0] == runs[1]
    assert set(runs[0]) == {200, 500}

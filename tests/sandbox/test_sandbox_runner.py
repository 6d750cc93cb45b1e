"""The CLI's JSON line, start_sandbox's life cycle, SandboxInfo and the pytest fixtures."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest

from sandbox.runner import REPO, SandboxInfo, start_sandbox
from tests.support.contract_examples import CONTRACT_PO
from tests.support.sandbox_api import api

KEYS = {
    "usdirect_url",
    "flxpoint_url",
    "feed_url",
    "api_token",
    "reseller_token",
    "platform_token",
    "usdirect_admin",
    "flxpoint_admin",
}


def test_cli_prints_one_json_line_and_stops_on_sigterm(tmp_path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--catalog-size", "300", "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
        env=os.environ | {"PYTHONPATH": str(REPO)},
    )
    try:
        assert proc.stdout is not None
        line = json.loads(proc.stdout.readline())
        assert set(line) >= KEYS
        assert line["feed_url"].startswith(line["usdirect_url"] + "/feeds/inventory.csv?key=")
        assert line["usdirect_admin"] == line["usdirect_url"] + "/_sandbox"
        headers = {"Authorization": f"Bearer {line['api_token']}"}
        assert httpx.get(line["usdirect_url"] + "/v1/ping", headers=headers).status_code == 200
        assert list(tmp_path.glob("*.csv")), "the feed is written to --data-dir"
    finally:
        proc.terminate()
        assert proc.wait(timeout=15) == 0
    assert proc.stdout.read() == b""
    assert b"Traceback" not in proc.stderr.read()


def test_start_sandbox_stops_the_process() -> None:
    with start_sandbox(catalog_size=100, usdirect_port=0) as info:
        url = info.usdirect_url
        assert httpx.get(f"{url}/v1/ping", headers=api(info)).status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/v1/ping", headers=api(info))


def test_start_failure_reports_the_cause() -> None:
    with pytest.raises(RuntimeError, match="unknown fault kind"), start_sandbox(faults=["GET /v1/ping boom"]):
        pass


def test_info_hides_secrets_and_builds_connections(sandbox: SandboxInfo) -> None:
    text = repr(sandbox)
    for secret in (sandbox.api_token, sandbox.reseller_token, sandbox.platform_token, sandbox.feed_url):
        assert secret not in text
    conns = sandbox.connections()
    assert conns["usdirect_default"] == {
        "conn_type": "usdirect",
        "host": sandbox.usdirect_url,
        "password": sandbox.api_token,
        "extra": {"feed_url": sandbox.feed_url, "reseller_token": sandbox.reseller_token},
    }
    assert conns["flxpoint_default"] == {
        "conn_type": "flxpoint",
        "host": sandbox.flxpoint_url,
        "password": sandbox.platform_token,
    }


def test_sandbox_connections_sets_airflow_env(sandbox_connections: dict) -> None:
    for conn_id, conn in sandbox_connections.items():
        assert json.loads(os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"]) == conn


def test_session_sandbox_keeps_contract_limits(sandbox: SandboxInfo) -> None:
    """The shared instance enforces the API limits but lets tests download the feed often."""
    with httpx.Client(timeout=30) as c:
        statuses = [c.get(sandbox.feed_url).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    with httpx.Client(timeout=30) as c:
        responses = [c.get(f"{sandbox.usdirect_url}/v1/ping", headers=api(sandbox)) for _ in range(8)]
    limited = [r for r in responses if r.status_code == 429]
    assert limited and all(r.headers["Retry-After"] == "1" for r in limited)


def test_state_file_carries_clock_catalog_orders_and_platform_across_a_restart(tmp_path) -> None:
    """`make airflow` restarts the sandbox with --state-file: what the warehouse knows must still be there."""
    state = tmp_path / "sandbox-state.pickle"
    options = {"catalog_size": 200, "feed_limit": 0, "state_file": state}
    with start_sandbox(**options) as sb:
        sku = next(
            r["sku"] for r in sb.catalog_truth()["rows"] if r["status"] == "active" and r["quantity"] > 5
        )
        body = dict(CONTRACT_PO, po_number="70001-1")
        body["lines"] = [{"line_number": 1, "item_number": sku, "quantity": 1, "unit_cost": "1.00"}]
        assert httpx.post(f"{sb.usdirect_url}/v1/orders", json=body, headers=api(sb)).status_code == 201
        sb.next_catalog_version(price=0.1)
        sb.advance_clock(hours=30)  # shipped, in transit
        before = {
            "clock": sb.clock_now(),
            "order": httpx.get(f"{sb.usdirect_url}/v1/orders/70001-1", headers=api(sb)).json(),
            "truth": sb.catalog_truth(),
            "frs": sb.platform("fulfillment-requests"),
        }
    assert state.exists(), "the sandbox saves its state on SIGTERM"
    with start_sandbox(**options) as sb:
        assert sb.clock_now() == before["clock"]
        assert httpx.get(f"{sb.usdirect_url}/v1/orders/70001-1", headers=api(sb)).json() == before["order"]
        assert sb.catalog_truth() == before["truth"]
        assert sb.platform("fulfillment-requests") == before["frs"]
        sb.advance_clock(hours=48)  # the restored order keeps moving along its timeline
        shipments = httpx.get(f"{sb.usdirect_url}/v1/orders/70001-1/shipments", headers=api(sb)).json()
        assert shipments["shipments"] and all(s["status"] == "delivered" for s in shipments["shipments"])


def test_state_file_of_another_seed_is_refused(tmp_path) -> None:
    state = tmp_path / "sandbox-state.pickle"
    with start_sandbox(catalog_size=100, state_file=state):
        pass
    with (
        pytest.raises(RuntimeError, match="same options or delete the file"),
        start_sandbox(catalog_size=100, seed=7, state_file=state),
    ):
        pass

"""Fixtures for the orders, shipments and invoices tests: warehouses on both engines, sample FRs."""

from __future__ import annotations

import copy
import uuid
from pathlib import Path
from typing import Any

import pytest

from sandbox.runner import SandboxInfo
from tests.support.connections import conn_env_var, warehouse_conn
from tests.support.contract_examples import CONTRACT_FR
from tests.support.paths import REPO
from usdirect.targets.warehouse.sql import Warehouse


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Warehouse:
    """An empty warehouse: a fresh DuckDB file, or a fresh schema in the session's Postgres DB."""
    schema = None if request.param == "duckdb" else f"orders_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv(*conn_env_var("wh_orders", warehouse_conn(request.param, request, tmp_path)))
    return Warehouse.from_conn_id("wh_orders", schema=schema)


@pytest.fixture
def duck_wh(monkeypatch: pytest.MonkeyPatch, duckdb_path: Path) -> Warehouse:
    """A DuckDB-only warehouse for the slower sandbox scenarios (both engines are covered elsewhere)."""
    monkeypatch.setenv(*conn_env_var("wh_orders", {"conn_type": "duckdb", "host": str(duckdb_path)}))
    return Warehouse.from_conn_id("wh_orders")


def make_fr(fr_id: int, po: str, **overrides: Any) -> dict[str, Any]:
    """A platform-shaped fulfillment request that passes every pre-validation rule."""
    fr: dict[str, Any] = copy.deepcopy(CONTRACT_FR) | {
        "id": fr_id,
        "fulfillmentRequestNumber": po,
        "orderNumber": f"SHOP-{fr_id}",
        "items": [
            {"id": fr_id * 10 + 1, "sku": "USD-10234", "quantity": 2, "cost": 12.49, "title": "Grill Brush"},
            {"id": fr_id * 10 + 2, "sku": "USD-10500", "quantity": 1, "cost": 5.0, "title": "Tongs"},
        ],
    }
    for key, value in overrides.items():
        if key in ("shippingAddress", "shippingMethod"):
            fr[key] = {**fr[key], **value}
        else:
            fr[key] = value
    return fr


TEMPLATES = REPO / "include" / "mappings"
ORDERS_TEMPLATE = TEMPLATES / "orders.yaml"
FAST_HTTP = {"backoff_base": 0.05, "backoff_max": 0.2, "timeout": 2}
# For scenarios that are not about rate limits: a faster sandbox and client keep the suite quick.
FAST_SANDBOX = {"rate_limit": 40, "platform_rate_limit": 40}
FAST_CLIENT = {"rate_limit": 38}


@pytest.fixture(scope="session")
def orders_template() -> Any:
    from usdirect.mapping import load_template

    return load_template(ORDERS_TEMPLATE)


@pytest.fixture(scope="session")
def shipments_template() -> Any:
    from usdirect.mapping import load_template

    return load_template(TEMPLATES / "shipments.yaml")


@pytest.fixture(scope="session")
def invoices_template() -> Any:
    from usdirect.mapping import load_template

    return load_template(TEMPLATES / "invoices.yaml")


def use_sandbox(sb: SandboxInfo, monkeypatch: pytest.MonkeyPatch, **extra: Any) -> None:
    """Point usdirect_default / flxpoint_default at ``sb`` with a short retry budget for tests."""
    for conn_id, conn in sb.connections().items():
        conn = {**conn, "extra": {**conn.get("extra", {}), **FAST_HTTP, **extra}}
        monkeypatch.setenv(*conn_env_var(conn_id, conn))


def usdirect_frs(sb: SandboxInfo) -> list[dict[str, Any]]:
    """The platform's fulfillment requests for US Direct (what a channel integration would write)."""
    return [
        {k: v for k, v in fr.items() if k != "sandboxDefect"}
        for fr in sb.platform("fulfillment-requests")
        if fr["sourceName"] == "US Direct"
    ]


def defects(sb: SandboxInfo) -> dict[str, str]:
    """PO number -> the sandbox's deliberate defect, for the seeded bad requests."""
    return {
        fr["fulfillmentRequestNumber"]: fr["sandboxDefect"]
        for fr in sb.platform("fulfillment-requests")
        if fr.get("sandboxDefect")
    }

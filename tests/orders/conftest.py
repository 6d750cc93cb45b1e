"""Fixtures for the orders, shipments and invoices tests: warehouses on both engines, templates."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.connections import conn_env_var, warehouse_conn
from tests.support.orders import ORDERS_TEMPLATE
from tests.support.paths import MAPPINGS
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


@pytest.fixture(scope="session")
def orders_template() -> Any:
    from usdirect.mapping import load_template

    return load_template(ORDERS_TEMPLATE)


@pytest.fixture(scope="session")
def shipments_template() -> Any:
    from usdirect.mapping import load_template

    return load_template(MAPPINGS / "shipments.yaml")


@pytest.fixture(scope="session")
def invoices_template() -> Any:
    from usdirect.mapping import load_template

    return load_template(MAPPINGS / "invoices.yaml")

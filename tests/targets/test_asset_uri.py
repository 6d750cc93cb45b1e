"""Asset URIs of warehouse tables and the aliases of the shipped DAGs' tasks, from real connections
and DAG files parsed by Airflow."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.connections import conn_env_var
from tests.support.paths import REPO
from tests.support.settings_file import write_settings
from usdirect.targets.warehouse.asset_uri import table_uri
from usdirect.targets.warehouse.sql import Warehouse


def test_a_duckdb_uri_names_the_absolute_file_and_never_the_connections_query(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    conn = {"conn_type": "duckdb", "host": "wh.duckdb?motherduck_token=SECRET-1"}
    monkeypatch.setenv(*conn_env_var("wh_uri", conn))
    uri = table_uri(Warehouse.from_conn_id("wh_uri"), "usdirect_inventory")
    assert uri == f"duckdb://{tmp_path.resolve()}/wh.duckdb/main/usdirect_inventory"


def test_a_postgres_uri_is_the_providers_convention_without_the_login(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.sdk import Asset

    conn = {
        "conn_type": "postgres",
        "host": "db.example",
        "login": "u",
        "password": "SECRET-2",
        "schema": "dw",
    }
    monkeypatch.setenv(*conn_env_var("wh_uri", conn))
    uri = table_uri(Warehouse.from_conn_id("wh_uri", schema="sales"), "usdirect_shipments")
    assert uri == "postgres://db.example:5432/dw/sales/usdirect_shipments"
    assert Asset(uri).uri == uri  # as the Postgres provider's sanitize_uri normalizes it
    assert table_uri(Warehouse.from_conn_id("wh_uri"), "t") == "postgres://db.example:5432/dw/public/t"


def test_every_data_task_of_the_shipped_dags_has_its_alias(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import AssetAlias

    monkeypatch.setenv("USDIRECT_CONFIG", str(write_settings(tmp_path, ["warehouse", "platform"])))
    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    outlets = {
        (dag_id, t.task_id): [o.name for o in t.outlets if isinstance(o, AssetAlias)]
        for dag_id, dag in bag.dags.items()
        for t in dag.tasks
    }
    inventory = outlets[("usdirect_get_inventory", "load_inventory_warehouse")]  # a mapped task
    assert inventory == ["usdirect.main.get_inventory.warehouse"]
    assert outlets[("usdirect_get_inventory", "publish_inventory_platform")] == [
        "usdirect.main.get_inventory.platform"
    ]
    assert outlets[("usdirect_get_inventory", "map_feed")] == ["usdirect.main.get_inventory.rejects"]
    assert outlets[("usdirect_get_inventory", "fetch_feed")] == []
    assert outlets[("usdirect_get_inventory", "record_feed_state")] == []
    assert outlets[("usdirect_get_shipments", "deliver_shipments_platform")] == [
        "usdirect.main.get_shipments.platform"
    ]
    assert outlets[("usdirect_send_orders", "send_orders")] == ["usdirect.main.send_orders.platform"]

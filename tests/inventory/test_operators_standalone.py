"""Get Inventory composed by hand from the public operators in a DAG of a user's own, without the
settings file: the full feed in partitions (mapped load and publish) and the changes of a window,
against the sandbox into a DuckDB warehouse and the platform."""

from __future__ import annotations

import datetime as dt
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.runner import SandboxInfo
from tests.support.connections import conn_env_var
from tests.support.inventory import (
    Env,
    assert_no_429,
    assert_platform_matches,
    assert_warehouse_matches,
    truth,
)
from tests.support.paths import MAPPINGS
from usdirect.targets.warehouse.sql import Warehouse

DAGS = textwrap.dedent(
    """
    import datetime as dt

    from airflow.sdk import DAG

    from usdirect.operators.inventory_deliver import (
        UsDirectInventoryChangesToPlatformOperator,
        UsDirectInventoryChangesToWarehouseOperator,
        UsDirectInventoryToPlatformOperator,
        UsDirectInventoryToWarehouseOperator,
        UsDirectRecordFeedStateOperator,
    )
    from usdirect.operators.inventory_fetch import (
        UsDirectGetInventoryChangesOperator,
        UsDirectGetInventoryOperator,
    )
    from usdirect.operators.inventory_map import (
        UsDirectMapInventoryChangesOperator,
        UsDirectMapInventoryOperator,
    )

    START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    SETTINGS = {{
        "account_id": "main",
        "targets": ["warehouse", "platform"],
        "template": {template!r},
        "staging_url": {staging!r},
    }}

    with DAG("my_inventory", schedule=None, start_date=START):
        fetch = UsDirectGetInventoryOperator(task_id="fetch", **SETTINGS)
        mapping = UsDirectMapInventoryOperator(
            task_id="map", fetched=fetch.output, partition_rows=200, **SETTINGS
        )
        load = UsDirectInventoryToWarehouseOperator.partial(task_id="load", **SETTINGS).expand(
            mapped=mapping.output
        )
        publish = UsDirectInventoryToPlatformOperator.partial(task_id="publish", **SETTINGS).expand(
            mapped=mapping.output
        )
        load >> publish
        UsDirectRecordFeedStateOperator(
            task_id="record", mapped=mapping.output, delivered=[load.output, publish.output], **SETTINGS
        )

    with DAG("my_inventory_changes", schedule=None, start_date=START):
        fetch = UsDirectGetInventoryChangesOperator(
            task_id="fetch",
            window_start="{{{{ params.since }}}}",
            window_end="{{{{ params.until }}}}",
            **SETTINGS,
        )
        mapping = UsDirectMapInventoryChangesOperator(task_id="map", fetched=fetch.output, **SETTINGS)
        load = UsDirectInventoryChangesToWarehouseOperator(task_id="load", mapped=mapping.output, **SETTINGS)
        load >> UsDirectInventoryChangesToPlatformOperator(
            task_id="publish", mapped=mapping.output, **SETTINGS
        )
    """
)


def _states(run: Any) -> dict[str, list[str]]:
    """Each task's states, one per map index."""
    out: dict[str, list[str]] = {}
    for ti in sorted(run.get_task_instances(), key=lambda ti: (ti.task_id, ti.map_index)):
        out.setdefault(ti.task_id, []).append(str(ti.state))
    return out


@pytest.fixture
def env(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    airflow_db: Path,
    sandbox_factory: Callable[..., SandboxInfo],
) -> Iterator[Env]:
    """Sandbox connections, a DuckDB warehouse and the DAG file above as the DAGs folder; no
    settings file anywhere."""
    import airflow.settings

    dags_folder = airflow.settings.DAGS_FOLDER
    sb = sandbox_factory(catalog_size=500)
    for conn_id, conn in sb.connections().items():
        conn = {**conn, "extra": {**conn.get("extra", {}), "max_attempts": 3, "backoff_base": 0.05}}
        monkeypatch.setenv(*conn_env_var(conn_id, conn))
    monkeypatch.setenv(
        *conn_env_var("usdirect_warehouse", {"conn_type": "duckdb", "host": str(tmp_path / "w.duckdb")})
    )
    monkeypatch.setenv("USDIRECT_CONFIG", str(tmp_path / "no-settings-file.yaml"))
    dags = tmp_path / "dags"
    dags.mkdir()
    text = DAGS.format(template=str(MAPPINGS / "inventory.yaml"), staging=str(tmp_path / "staging"))
    (dags / "my_inventory.py").write_text(text)
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(dags))
    monkeypatch.setattr("airflow.settings.DAGS_FOLDER", str(dags))  # the dags-folder bundle's path
    yield Env(sb, Warehouse.from_conn_id("usdirect_warehouse"), tmp_path)
    # After these runs airflow.settings.DAGS_FOLDER still names this folder (monkeypatch's undo
    # does not restore it), and later tests' dag.test() would sync it instead of dags/.
    airflow.settings.DAGS_FOLDER = dags_folder


def _run(env: Env, dag_id: str, **kwargs: Any) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(env.tmp / "dags"))
    assert bag.import_errors == {}
    return bag.get_dag(dag_id).test(**kwargs)


def test_get_inventory_composed_from_the_operators_runs_without_a_settings_file(env: Env) -> None:
    run = _run(env, "my_inventory")
    states = _states(run)
    assert run.state == "success", states
    assert states["load"] == states["publish"] == ["success"] * 3  # 500 SKUs in slices of 200
    assert_warehouse_matches(env)
    assert_platform_matches(env)

    # The feed state was recorded: the same feed again is a 304, nothing loaded or published.
    again = _states(_run(env, "my_inventory"))
    assert again["fetch"] == ["skipped"] and again["record"] == ["skipped"], again

    discontinued = {sku for sku, r in truth(env.sandbox).items() if r["archived"]}
    now = env.sandbox.clock_now()
    env.sandbox.next_catalog_version(price=0.05, quantity=0.1, new=0.0, removed=0.0)
    window = {
        "since": (now - dt.timedelta(hours=1)).isoformat(),
        "until": (now + dt.timedelta(minutes=15)).isoformat(),
    }
    run = _run(env, "my_inventory_changes", run_conf=window)
    states = _states(run)
    assert states == {"fetch": ["success"], "map": ["success"], "load": ["success"], "publish": ["success"]}
    assert_warehouse_matches(env)
    assert_platform_matches(env, never_created=discontinued)
    assert_no_429(env)
    with env.wh.connect() as conn:
        runs = env.wh.fetchall(
            conn,
            f"SELECT dag_id, task_id, count(*) FROM {env.wh.table('usdirect_runs')} "
            "WHERE outcome = 'success' GROUP BY dag_id, task_id ORDER BY dag_id, task_id",
        )
    assert runs == [
        ("my_inventory", "fetch", 1),
        ("my_inventory", "load", 3),
        ("my_inventory", "map", 1),
        ("my_inventory", "publish", 3),
        ("my_inventory", "record", 1),
        ("my_inventory_changes", "fetch", 1),
        ("my_inventory_changes", "load", 1),
        ("my_inventory_changes", "map", 1),
        ("my_inventory_changes", "publish", 1),
    ]


def test_a_target_step_refuses_settings_beside_from_settings() -> None:
    from usdirect.operators.inventory_deliver import UsDirectInventoryToWarehouseOperator

    with pytest.raises(ValueError, match="archive_after_missing_feeds come"):
        UsDirectInventoryToWarehouseOperator(task_id="a", from_settings=True, archive_after_missing_feeds=3)

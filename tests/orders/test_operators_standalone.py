"""The public operators in DAGs of a user's own, without the settings file: the README's example DAG
(Get Invoice for the POs a SQL query returns) runs against the sandbox after orders were sent and
shipments fetched by the operators too."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sandbox.runner import SandboxInfo
from tests.support.connections import conn_env_var
from tests.support.orders import FAST_CLIENT, FAST_HTTP, FAST_SANDBOX
from tests.support.paths import MAPPINGS, REPO
from usdirect.targets.warehouse.sql import Warehouse


def _states(run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


@pytest.fixture
def standalone_env(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    airflow_db: Path,
    sandbox_factory: Callable[..., SandboxInfo],
) -> tuple[SandboxInfo, Warehouse]:
    """Sandbox connections and a DuckDB warehouse; no settings file anywhere."""
    sb = sandbox_factory(**FAST_SANDBOX)
    for conn_id, conn in sb.connections().items():
        conn = {**conn, "extra": {**conn.get("extra", {}), **FAST_HTTP, **FAST_CLIENT}}
        monkeypatch.setenv(*conn_env_var(conn_id, conn))
    monkeypatch.setenv(
        *conn_env_var("usdirect_warehouse", {"conn_type": "duckdb", "host": str(tmp_path / "w.duckdb")})
    )
    monkeypatch.setenv("USDIRECT_CONFIG", str(tmp_path / "no-settings-file.yaml"))
    return sb, Warehouse.from_conn_id("usdirect_warehouse")


# Orders sent and their shipments loaded by the operators too, each in a DAG of its own.
SETUP_DAGS = textwrap.dedent(
    """
    import datetime as dt

    from airflow.sdk import DAG

    from usdirect.operators.orders import UsDirectSendOrdersOperator
    from usdirect.operators.shipments import (
        UsDirectGetShipmentsOperator,
        UsDirectShipmentsToWarehouseOperator,
    )

    START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    STAGING = {staging!r}
    MAPPINGS = {mappings!r}

    with DAG("my_send_orders", schedule=None, start_date=START):
        UsDirectSendOrdersOperator(
            task_id="send",
            confirm=True,
            targets=["warehouse", "platform"],
            template=MAPPINGS + "/orders.yaml",
            staging_url=STAGING,
        )

    with DAG("my_shipments", schedule=None, start_date=START):
        SHIPMENTS = {{"template": MAPPINGS + "/shipments.yaml", "staging_url": STAGING}}
        fetch = UsDirectGetShipmentsOperator(
            task_id="fetch",
            window_start="{{{{ params.since }}}}",
            window_end="{{{{ params.until }}}}",
            **SHIPMENTS,
        )
        UsDirectShipmentsToWarehouseOperator(task_id="load", fetched=fetch.output, **SHIPMENTS)
    """
)


def _dag(folder: Path, dag_id: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A DAG of ``folder``, which becomes the DAGs folder (``dag.test()`` runs serialized DAGs of it)."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(folder))
    monkeypatch.setattr("airflow.settings.DAGS_FOLDER", str(folder))  # the dags-folder bundle's path
    bag = DagBag(dag_folder=str(folder))
    assert bag.import_errors == {}
    return bag.get_dag(dag_id)


def _send_and_ship(sb: SandboxInfo, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Orders sent and their shipments loaded with the operators; returns the POs created."""
    dags = tmp / "dags"
    dags.mkdir()
    (dags / "setup.py").write_text(SETUP_DAGS.format(staging=str(tmp / "staging"), mappings=str(MAPPINGS)))
    start = sb.clock_now()
    assert _states(_dag(dags, "my_send_orders", monkeypatch).test()) == {"send": "success"}
    created = sorted(sb.creation_counts())
    assert len(created) == 21

    sb.advance_clock(days=4)
    window = {"since": start.isoformat(), "until": sb.clock_now().isoformat()}
    run = _dag(dags, "my_shipments", monkeypatch).test(run_conf=window)
    assert _states(run) == {"fetch": "success", "load": "success"}
    sb.advance_clock(days=4)
    return created


def test_readme_example_gets_invoices_for_the_pos_a_sql_query_returns(
    standalone_env: tuple[SandboxInfo, Warehouse], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb, wh = standalone_env
    p = wh.placeholder
    created = _send_and_ship(sb, tmp_path, monkeypatch)
    disputed = created[:3]
    with wh.connect() as conn:
        wh.execute(conn, "CREATE TABLE disputed_orders (po_number VARCHAR)")
        for po in disputed:
            wh.execute(conn, f"INSERT INTO disputed_orders VALUES ({p})", (po,))

    run = _dag(REPO / "examples", "example_usdirect_invoices_for_sql_pos", monkeypatch).test()
    assert _states(run) == {
        "disputed_pos": "success",
        "get_invoices": "success",
        "load_invoices": "success",
    }
    with wh.connect() as conn:
        invoiced = wh.fetchall(conn, f"SELECT DISTINCT po_number FROM {wh.table('usdirect_invoices')}")
        problems = wh.fetchall(
            conn, f"SELECT count(*) FROM {wh.table('usdirect_invoices')} WHERE check_problem IS NOT NULL"
        )
        runs = wh.fetchall(
            conn,
            f"SELECT task_id, outcome, rows_in, rows_out FROM {wh.table('usdirect_runs')} "
            "WHERE dag_id = 'example_usdirect_invoices_for_sql_pos' ORDER BY started_at",
        )
    assert sorted(po for (po,) in invoiced) == disputed  # only the queried POs, not all 21 shipped
    assert problems == [(0,)]  # quantities checked against the shipments the operators loaded
    assert runs == [("get_invoices", "success", 3, 3), ("load_invoices", "success", 3, 3)]


def test_operator_refuses_settings_arguments_beside_from_settings_and_a_missing_template() -> None:
    from usdirect.operators.invoices import UsDirectGetInvoicesOperator

    with pytest.raises(ValueError, match="usdirect_conn_id come"):
        UsDirectGetInvoicesOperator(task_id="a", from_settings=True, usdirect_conn_id="other")
    with pytest.raises(ValueError, match=r"template=\.\.\."):
        UsDirectGetInvoicesOperator(task_id="b")


def test_po_numbers_arrive_as_lists_strings_or_query_rows() -> None:
    from usdirect.operators.usdirect_operator import po_list

    assert po_list(None) is None
    assert po_list(["A-1", 7]) == ["A-1", "7"]
    assert po_list("A-1, A-2 A-3") == ["A-1", "A-2", "A-3"]
    assert po_list('["A-1", "A-2"]') == ["A-1", "A-2"]
    assert po_list([["A-1"], ("A-2",)]) == ["A-1", "A-2"]
    with pytest.raises(ValueError, match="one column"):
        po_list([["A-1", "x"]])


def test_operator_settings_are_checked_like_the_settings_file(tmp_path: Path) -> None:
    from usdirect.settings.config import ConfigError, operation_config

    cfg = operation_config(
        tmp_path / "dag.py",
        "get_shipments",
        {"id": "default", "targets": ["platform"]},
        {"schedule": None, "template": "mappings/shipments.yaml", "overlap_minutes": 10},
    )
    assert set(cfg.operations) == {"get_shipments"}  # one operation is enough here, not in a file
    assert cfg.operations["get_shipments"].straggler_age_hours == 72  # the settings file's default
    assert cfg.template_path(cfg.accounts[0], "get_shipments") == tmp_path / "mappings" / "shipments.yaml"
    with pytest.raises(ConfigError, match=r"operations\.get_shipments\.overlap_minutes: .*greater than"):
        operation_config(
            tmp_path / "dag.py",
            "get_shipments",
            {"id": "default"},
            {"schedule": None, "template": "t.yaml", "overlap_minutes": -1},
        )

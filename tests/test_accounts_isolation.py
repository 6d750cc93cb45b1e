"""A failing account never blocks the others: real DAG runs (``dag.test()``) against the sandbox.

Four accounts in one settings file and one DuckDB warehouse file (a schema each): one with a
refused API Token, one whose connection does not exist, two healthy. The broken ones fail at once
with an alert naming their account and connection; the healthy ones, run after them, succeed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox.runner import SandboxInfo
from tests.support.connections import conn_env_var
from tests.support.orders import FAST_CLIENT, FAST_HTTP, FAST_SANDBOX
from tests.support.paths import REPO
from tests.support.receivers import WebhookReceiver
from usdirect.targets.warehouse.sql import Warehouse

ACCOUNTS = {  # account id -> its usdirect connection id
    "main": "usdirect_default",
    "east": "usdirect_east",  # the API Token is wrong
    "gone": "usdirect_gone",  # no such connection
    "west": "usdirect_west",
}


def _settings(tmp_path: Path, **account_templates: dict[str, str]) -> Path:
    raw = yaml.safe_load((REPO / "include" / "usdirect.yaml").read_text())
    for op in raw["operations"].values():
        op["template"] = str(REPO / "include" / op["template"])
    raw["accounts"] = [
        {"id": account, "usdirect_conn_id": conn_id, "targets": ["warehouse"]}
        | ({} if account == "main" else {"warehouse_schema": account})
        | ({"templates": account_templates[account]} if account in account_templates else {})
        for account, conn_id in ACCOUNTS.items()
    ]
    channel = {"type": "http", "conn_id": "accounts_alerts", "endpoint": "/alerts"}
    raw["alerts"] = {"on_failure": True, "needs_attention": False, "channels": [channel]}
    raw["staging"] = {"url": str(tmp_path / "staging")}
    path = tmp_path / "usdirect.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture
def accounts_env(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    airflow_db: Path,
    sandbox_factory: Callable[..., SandboxInfo],
) -> tuple[SandboxInfo, WebhookReceiver, Path]:
    sb = sandbox_factory(**FAST_SANDBOX)
    good = sb.connections()["usdirect_default"]
    good = {**good, "extra": {**good.get("extra", {}), **FAST_HTTP, **FAST_CLIENT}}
    monkeypatch.setenv(*conn_env_var("usdirect_default", good))
    monkeypatch.setenv(*conn_env_var("usdirect_west", good))
    monkeypatch.setenv(*conn_env_var("usdirect_east", {**good, "password": "tok-east-revoked-4c1f"}))
    warehouse = tmp_path / "w.duckdb"
    monkeypatch.setenv(*conn_env_var("usdirect_warehouse", {"conn_type": "duckdb", "host": str(warehouse)}))
    webhook = WebhookReceiver().start()
    request.addfinalizer(webhook.stop)
    monkeypatch.setenv(
        *conn_env_var("accounts_alerts", {"conn_type": "http", "host": "127.0.0.1", "port": webhook.port})
    )
    monkeypatch.setenv("USDIRECT_CONFIG", str(_settings(tmp_path)))
    return sb, webhook, warehouse


def _broken_shipments_template(tmp_path: Path) -> tuple[Path, int]:
    """A copy of the bundled shipments template with a misspelt key, and that key's line."""
    folder = tmp_path / "east-mappings"
    folder.mkdir()
    (folder / "value_maps.yaml").write_text((REPO / "include" / "mappings" / "value_maps.yaml").read_text())
    text = (REPO / "include" / "mappings" / "shipments.yaml").read_text()
    old = "    source: shipment_id\n"
    assert text.count(old) == 1
    path = folder / "shipments.yaml"
    path.write_text(text.replace(old, "    sorce: shipment_id\n"))
    return path, text[: text.index(old)].count("\n") + 1


def _dags() -> dict[str, Any]:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags" / "usdirect_get_shipments.py"))
    assert bag.import_errors == {}
    return bag.dags


def _states(run: Any) -> dict[str, tuple[str, int]]:
    return {ti.task_id: (str(ti.state), ti.try_number) for ti in run.get_task_instances()}


def _outcomes(account: str) -> list[tuple[str, str]]:
    wh = Warehouse.from_conn_id("usdirect_warehouse", schema=None if account == "main" else account)
    with wh.connect() as conn:
        return wh.fetchall(
            conn, f"SELECT account, outcome FROM {wh.table('usdirect_runs')} ORDER BY started_at"
        )


def test_broken_connections_fail_their_own_runs_with_an_alert_and_the_others_run_green(
    accounts_env: tuple[SandboxInfo, WebhookReceiver, Path],
) -> None:
    sb, webhook, _ = accounts_env
    dags = _dags()
    assert set(dags) == {
        "usdirect_get_shipments",
        "usdirect_east_get_shipments",
        "usdirect_gone_get_shipments",
        "usdirect_west_get_shipments",
    }
    start = sb.clock_now()

    # The broken accounts run first: what they leave behind must not stop the healthy ones.
    east = dags["usdirect_east_get_shipments"].test(logical_date=start)
    gone = dags["usdirect_gone_get_shipments"].test(logical_date=start)
    main = dags["usdirect_get_shipments"].test(logical_date=start)
    west = dags["usdirect_west_get_shipments"].test(logical_date=start)

    assert east.state == "failed" and gone.state == "failed"
    # Waiting cannot fix either: the fetch fails on its first try, the load never starts.
    assert _states(east)["fetch_shipments"] == ("failed", 1)
    assert _states(gone)["fetch_shipments"] == ("failed", 1)
    assert _states(east)["load_shipments_warehouse"][0] == "upstream_failed"
    healthy = {"fetch_shipments": ("success", 1), "load_shipments_warehouse": ("success", 1)}
    assert _states(main) == healthy
    assert _states(west) == healthy

    alerts = [r.json() for r in webhook.requests if r.path == "/alerts"]
    by_account = {a["account"]: a for a in alerts}
    assert sorted(by_account) == ["east", "gone"] and len(alerts) == 2, alerts
    assert by_account["east"]["dag_id"] == "usdirect_east_get_shipments"
    assert by_account["east"]["cause"] == "API Token rejected by US Direct (401)"
    assert (
        by_account["east"]["fix"]
        == "update it on connection usdirect_east, then press Test on the connection"
    )
    assert by_account["gone"]["dag_id"] == "usdirect_gone_get_shipments"
    assert by_account["gone"]["cause"] == "connection usdirect_gone does not exist in this Airflow"
    assert "point the account 'gone' at another connection id" in by_account["gone"]["fix"]
    assert {a["try_number"] for a in alerts} == {1}
    for alert in alerts:
        assert "tok-east-revoked-4c1f" not in str(alert) and sb.api_token not in str(alert)

    # Each account's audit rows are in its own schema of the shared warehouse file.
    assert _outcomes("east") == [("east", "failed")]
    assert _outcomes("gone") == [("gone", "failed")]
    assert set(_outcomes("main")) == {("main", "success")}
    assert set(_outcomes("west")) == {("west", "success")}


def test_a_broken_template_of_one_account_fails_only_that_accounts_dag_at_once_with_an_alert(
    accounts_env: tuple[SandboxInfo, WebhookReceiver, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb, webhook, _ = accounts_env
    template, line = _broken_shipments_template(tmp_path)
    monkeypatch.setenv("USDIRECT_CONFIG", str(_settings(tmp_path, west={"get_shipments": str(template)})))

    dags = _dags()  # no import error: the other accounts' DAGs of this file stay
    west = dags["usdirect_west_get_shipments"]
    assert west.task_ids == ["check_template"]
    assert west.dag_display_name == "usdirect_west_get_shipments (template broken)"
    assert "template-broken" in west.tags
    assert f"{template}:{line}: unknown key 'sorce' in fields.shipment_id" in west.description
    assert dags["usdirect_get_shipments"].task_ids == ["fetch_shipments", "load_shipments_warehouse"]

    start = sb.clock_now()
    broken = west.test(logical_date=start)
    main = dags["usdirect_get_shipments"].test(logical_date=start)

    assert _states(broken) == {"check_template": ("failed", 1)}
    assert _states(main) == {"fetch_shipments": ("success", 1), "load_shipments_warehouse": ("success", 1)}
    (alert,) = [r.json() for r in webhook.requests if r.path == "/alerts"]
    assert alert["account"] == "west" and alert["dag_id"] == "usdirect_west_get_shipments"
    assert alert["cause"] == "the mapping template cannot be used as written"
    assert f"{template}:{line}: unknown key 'sorce'" in alert["text"]
    assert _outcomes("west") == [("west", "failed")]

    # Fixed before the next parse: the stand-in skips instead of reporting a template that is fine.
    template.write_text(template.read_text().replace("    sorce: shipment_id", "    source: shipment_id"))
    assert _states(west.test(logical_date=start))["check_template"][0] == "skipped"
    assert _dags()["usdirect_west_get_shipments"].task_ids == ["fetch_shipments", "load_shipments_warehouse"]

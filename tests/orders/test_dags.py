"""The three DAGs through ``dag.test()`` against the sandbox, into DuckDB and the platform."""

from __future__ import annotations

import json
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
from tests.support.settings_file import write_settings
from usdirect.targets.warehouse import demo
from usdirect.targets.warehouse import order_tables as ot
from usdirect.targets.warehouse.sql import Warehouse

TEMPLATE_FILES = {
    "send_orders": "orders.yaml",
    "get_shipments": "shipments.yaml",
    "get_invoices": "invoices.yaml",
}


def _dag(dag_id: str) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    return bag.get_dag(dag_id)


def _states(run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


@pytest.fixture
def dag_env(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    airflow_db: Path,
    sandbox_factory: Callable[..., SandboxInfo],
) -> tuple[SandboxInfo, Warehouse, Path]:
    sb = sandbox_factory(**FAST_SANDBOX)
    for conn_id, conn in sb.connections().items():
        conn = {**conn, "extra": {**conn.get("extra", {}), **FAST_HTTP, **FAST_CLIENT}}
        monkeypatch.setenv(*conn_env_var(conn_id, conn))
    monkeypatch.setenv(
        *conn_env_var("usdirect_warehouse", {"conn_type": "duckdb", "host": str(tmp_path / "w.duckdb")})
    )
    webhook = WebhookReceiver().start()
    request.addfinalizer(webhook.stop)
    monkeypatch.setenv(
        *conn_env_var("orders_alerts", {"conn_type": "http", "host": "127.0.0.1", "port": webhook.port})
    )
    monkeypatch.setenv(
        "USDIRECT_CONFIG",
        str(write_settings(tmp_path, ["warehouse", "platform"], alerts_conn="orders_alerts")),
    )
    request.node.webhook = webhook
    return sb, Warehouse.from_conn_id("usdirect_warehouse"), tmp_path


def _runs(wh: Warehouse) -> list[tuple]:
    with wh.connect() as conn:
        return wh.fetchall(
            conn,
            f"SELECT dag_id, task_id, outcome, rows_in, rows_out, rows_rejected, counts "
            f"FROM {wh.table('usdirect_runs')} ORDER BY started_at",
        )


def test_send_ship_invoice_dags_run_green_end_to_end(
    dag_env: tuple[SandboxInfo, Warehouse, Path],
    caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
) -> None:
    sb, wh, tmp = dag_env
    start = sb.clock_now()

    dry = _dag("usdirect_send_orders").test(run_conf={"dry_run": True})
    assert _states(dry) == {"send_orders": "success"}
    assert sb.creation_counts() == {}
    with wh.connect() as conn:  # a dry run records nothing either
        assert wh.fetchall(conn, f"SELECT count(*) FROM {wh.table(ot.FR)}") == [(0,)]
    assert {fr["status"] for fr in sb.platform("fulfillment-requests")} == {"Unprocessed"}
    (dry_file,) = (tmp / "staging").rglob("dry_run.json")
    shown = json.loads(dry_file.read_text())
    assert len(shown["payloads"]) == 21 and len(shown["problems"]) == 5

    run = _dag("usdirect_send_orders").test(run_conf={"confirm": True})
    assert _states(run) == {"send_orders": "success"}
    counts = sb.creation_counts()
    assert len(counts) == 21 and {c["created"] for c in counts.values()} == {1}
    frs = sb.platform("fulfillment-requests")
    assert sorted({fr["status"] for fr in frs}) == [
        "Additional Info Required",
        "Failed",
        "Processed",
        "Unprocessed",
    ]
    alert = request.node.webhook.wait_for(lambda r: r.json().get("reason") == "orders_need_attention").json()
    assert alert["dag_id"] == "usdirect_send_orders" and alert["kind"] == "needs_attention"
    assert "5 order(s) need a person" in alert["text"]
    assert {"54021-1", "54022-1"} <= set(alert["details"])

    sb.advance_clock(days=4)
    run = _dag("usdirect_get_shipments").test(logical_date=start)
    assert _states(run) == {
        "fetch_shipments": "success",
        "load_shipments_warehouse": "success",
        "deliver_shipments_platform": "success",
    }
    with wh.connect() as conn:
        n_shipments = wh.fetchall(conn, f"SELECT count(*) FROM {wh.table(ot.SHIPMENTS)}")[0][0]
    assert n_shipments > 20 and len(sb.platform("shipments")) == n_shipments

    sb.advance_clock(days=4)
    run = _dag("usdirect_get_invoices").test()
    assert _states(run) == {
        "fetch_invoices": "success",
        "load_invoices_warehouse": "success",
        "deliver_invoices_platform": "success",
    }
    with wh.connect() as conn:
        n_invoices = wh.fetchall(conn, f"SELECT count(*) FROM {wh.table(ot.INVOICES)}")[0][0]
    assert n_invoices == 20 and len(sb.platform("source-invoices")) == 20

    outcomes = {(r[0], r[1]): r for r in _runs(wh)}
    send = outcomes[("usdirect_send_orders", "send_orders")]
    assert send[2:6] == ("success", 26, 21, 5)
    assert json.loads(send[6])["needs_attention"] == 5
    assert all(r[2] == "success" for r in outcomes.values())
    _assert_no_secrets(sb, wh, tmp, caplog.text)
    recon = demo.reconciliation_counts(wh)
    assert recon["needs_attention"] == 5 and recon["cancelled"] == 1
    assert recon["paid"] + recon.get("credited", 0) + recon.get("invoiced", 0) == 20


def _assert_no_secrets(sb: SandboxInfo, wh: Warehouse, tmp: Path, logs: str) -> None:
    """Tokens and the feed URL appear in no log line, warehouse table or staged file."""
    tables = (
        "usdirect_runs",
        "usdirect_rejects",
        ot.FR,
        ot.SHIPMENTS,
        ot.INVOICES,
    )
    with wh.connect() as conn:
        stored = " ".join(str(wh.fetchall(conn, f"SELECT * FROM {wh.table(t)}")) for t in tables)
    staged = " ".join(p.read_bytes().decode("latin-1") for p in (tmp / "staging").rglob("*") if p.is_file())
    assert logs and stored and staged
    for secret in (sb.api_token, sb.reseller_token, sb.platform_token, sb.feed_url):
        assert secret not in logs and secret not in stored and secret not in staged


def _conf_with_targets(tmp: Path, targets: list[str]) -> None:
    """Rewrite the run's settings file with other targets for the account."""
    path = tmp / "usdirect.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["accounts"][0]["targets"] = targets
    path.write_text(yaml.safe_dump(raw))


def test_verify_first_holds_unconfirmed_runs_and_reminds_once_a_day(
    dag_env: tuple[SandboxInfo, Warehouse, Path],
    caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
) -> None:
    """automatic: false (the shipped default): a run nobody confirmed sends nothing, logs what it
    would send without street address or phone, and reminds once a day; po_numbers sends one."""
    sb, wh, _ = dag_env
    webhook = request.node.webhook
    frs = [fr for fr in sb.platform("fulfillment-requests") if fr["sourceName"] == "US Direct"]
    first = frs[0]
    for _ in range(2):
        run = _dag("usdirect_send_orders").test()
        assert _states(run) == {"send_orders": "success"}
    assert sb.creation_counts() == {}
    assert {fr["status"] for fr in sb.platform("fulfillment-requests")} == {"Unprocessed"}
    reminders = [
        r.json() for r in webhook.requests if r.json().get("reason") == "orders_awaiting_confirmation"
    ]
    assert len(reminders) == 1, reminders  # the second held run stays quiet
    (reminder,) = reminders
    assert reminder["kind"] == "needs_attention"
    assert reminder["cause"].startswith("21 order(s) wait to be sent and 5 need a person")
    assert "operations.send_orders.automatic: false" in reminder["cause"]
    assert "po_numbers" in reminder["fix"] and "automatic: true" in reminder["fix"]
    address = first["shippingAddress"]
    one = first["fulfillmentRequestNumber"]
    shown = [m for m in caplog.messages if m.startswith(f"dry run, would send PO {one}:")]
    assert shown and f"ship to {address['city']}, {address['stateCode']}" in shown[0]
    assert "line(s) [" in shown[0] and " x" in shown[0]
    for private in (address["addressLine1"], address["name"], address.get("phone")):
        assert private and private not in caplog.text
    with wh.connect() as conn:
        held = wh.fetchall(conn, f"SELECT counts FROM {wh.table('usdirect_runs')} ORDER BY started_at")
    assert [json.loads(c)["held_for_confirmation"] for (c,) in held] == [1, 1]
    assert [json.loads(c)["dry_run"] for (c,) in held] == [21, 21]

    run = _dag("usdirect_send_orders").test(run_conf={"po_numbers": [one]})
    assert _states(run) == {"send_orders": "success"}
    assert list(sb.creation_counts()) == [one]


def test_platform_only_account_keeps_the_order_ledger_in_its_warehouse_connection(
    dag_env: tuple[SandboxInfo, Warehouse, Path],
) -> None:
    """As for the publish ledger: each PO is claimed in the ledger before it is sent, instead of
    being looked up at US Direct before every first send."""
    sb, wh, tmp = dag_env
    _conf_with_targets(tmp, ["platform"])
    run = _dag("usdirect_send_orders").test(run_conf={"confirm": True})
    assert _states(run) == {"send_orders": "success"}
    created = sb.creation_counts()
    assert len(created) == 21 and {c["submitted"] for c in created.values()} == {1}
    lookups = sum(
        n for k, by in sb.stats()["requests"].items() if k.startswith("GET /v1/orders/") for n in by.values()
    )
    assert lookups <= 1, sb.stats()["requests"]  # only the 409-free path: no lookup before a first send
    with wh.connect() as conn:
        ledger = dict(wh.fetchall(conn, f"SELECT po_number, status FROM {wh.table(ot.FR)}"))
    assert {po for po, st in ledger.items() if st == "submitted"} == set(created)
    assert sorted(set(ledger.values())) == ["needs_attention", "submitted"]

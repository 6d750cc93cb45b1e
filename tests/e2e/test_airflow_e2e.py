"""End to end on a real Airflow: trigger through the REST API v2, backfill through the CLI, alert on a
broken credential. The harness DAG proves the plumbing; each operation DAG is exercised once its
file exists in dags/ (until then its tests skip, saying which file is missing).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator

import pytest

from scripts.local_airflow import import_connections
from tests.support.airflow_stack import HARNESS_DAG, TERMINAL, AirflowStack, require_dag_file, settle
from tests.support.connections import conn_env_var
from usdirect.targets.warehouse.fulfillment_requests import import_fulfillment_requests
from usdirect.targets.warehouse.sql import Warehouse

pytestmark = pytest.mark.e2e

OPERATION_DAGS = (
    "usdirect_get_inventory",
    "usdirect_get_inventory_changes",
    "usdirect_send_orders",
    "usdirect_get_shipments",
    "usdirect_get_invoices",
)
CATALOG_ROWS = 300  # the e2e sandbox's catalog size
# What a shipment is (bookkeeping like last_seen_at and run_id legitimately moves on a re-run).
SHIPMENT_STATE = (
    "SELECT s.shipment_id, s.po_number, s.carrier, s.shipping_code, s.method, s.tracking_number, s.status, "
    "s.supplier_status, s.ship_date, s.updated_at, i.line_number, i.item_number, i.sku, i.quantity "
    "FROM usdirect_shipments s LEFT JOIN usdirect_shipment_items i USING (shipment_id) ORDER BY 1, 11"
)
BACKFILL_DAYS = [dt.date(2026, 11, 20), dt.date(2026, 11, 21), dt.date(2026, 11, 22)]


def run_dag(stack: AirflowStack, dag_id: str, conf: dict | None = None) -> tuple[str, str, dict[str, str]]:
    run_id = stack.trigger(dag_id, conf)
    state = stack.wait_run(dag_id, run_id, timeout=180)
    settle(stack, dag_id)
    return run_id, state, stack.task_states(dag_id, run_id)


def audit_rows(stack: AirflowStack, dag_id: str, run_id: str) -> list[tuple]:
    return stack.warehouse_rows(
        f"SELECT task_id, outcome FROM usdirect_runs WHERE dag_id = '{dag_id}' AND run_id = '{run_id}'"
    )


def windows(stack: AirflowStack, dag_id: str) -> list[tuple[dt.date, dt.date]]:
    """Windows the DAG's backfill runs recorded, one entry per run: a window fetched twice shows twice."""
    rows = stack.warehouse_rows(
        "SELECT DISTINCT run_id, CAST(window_start AS DATE), CAST(window_end AS DATE) FROM usdirect_runs "
        f"WHERE dag_id = '{dag_id}' AND run_id LIKE 'backfill__%' AND outcome = 'success' "
        "AND window_start IS NOT NULL ORDER BY 2"
    )
    return [(a, b) for _, a, b in rows]


def backfill(stack: AirflowStack, dag_id: str, days: list[dt.date], reprocess: str = "none") -> list[dict]:
    """Run `airflow backfill create`, wait until the scheduler completes it, return its runs.

    The DAG must be unpaused (the scheduler leaves a paused DAG's backfill runs queued), and
    ``--max-active-runs 1`` keeps windows from running side by side (the default is 10). A
    reprocessed window keeps its run id, so runs are matched by logical date.
    """
    stack.api("PATCH", f"dags/{dag_id}", json={"is_paused": False})
    known = {b["id"] for b in stack.api("GET", "backfills", params={"dag_id": dag_id})["backfills"]}
    stack.cli(
        "backfill", "create", "--dag-id", dag_id, "--from-date", days[0].isoformat(),
        "--to-date", days[-1].isoformat(), "--reprocess-behavior", reprocess, "--max-active-runs", "1",
    )  # fmt: skip
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        mine = [
            b
            for b in stack.api("GET", "backfills", params={"dag_id": dag_id})["backfills"]
            if b["id"] not in known
        ]
        if mine and all(b["completed_at"] for b in mine):
            settle(stack, dag_id)
            wanted = {f"{d.isoformat()}T00:00:00Z" for d in days}
            return [
                r for r in stack.runs(dag_id) if r["run_type"] == "backfill" and r["logical_date"] in wanted
            ]
        time.sleep(2)
    raise AssertionError(f"backfill of {dag_id} did not finish: {stack.runs(dag_id)}\n{stack.tail_logs()}")


def task_runs(stack: AirflowStack, dag_id: str, task_id: str | None = None) -> int:
    only = f" AND task_id = '{task_id}'" if task_id else ""
    return stack.warehouse_rows(f"SELECT count(*) FROM usdirect_runs WHERE dag_id = '{dag_id}'{only}")[0][0]


def shipments_list_calls(stack: AirflowStack) -> int:
    return sum(stack.sandbox.stats()["requests"].get("GET /v1/shipments", {}).values())


@pytest.fixture
def broken_api_token(airflow_stack: AirflowStack) -> Iterator[str]:
    """usdirect_default with a wrong API Token (replaced through the CLI), restored afterwards."""
    good = airflow_stack.sandbox.connections()
    wrong = "wrong-token-" + "x" * 20
    broken = {**good["usdirect_default"], "password": wrong}
    import_connections(airflow_stack.env, {"usdirect_default": broken})
    try:
        yield wrong
    finally:
        import_connections(airflow_stack.env, {"usdirect_default": good["usdirect_default"]})


def assert_credential_alert(stack: AirflowStack, dag_id: str, run_id: str, secrets: list[str]) -> None:
    request = stack.alerts.wait_for(lambda r: r.json().get("run_id") == run_id, timeout=30)
    alert = request.json()
    assert alert["kind"] == "failure"
    assert alert["dag_id"] == dag_id
    assert alert["try_number"] == 1
    assert alert["cause"] == "API Token rejected by US Direct (401)"
    assert alert["fix"] == "update it on connection usdirect_default, then press Test on the connection"
    assert alert["guide"] == "README.md#connection-not-authenticating"
    assert alert["log_url"].startswith(
        f"http://localhost:{stack.env['AIRFLOW__API__PORT']}/dags/{dag_id}/runs/"
    )
    assert f"/tasks/{alert['task_id']}?try_number=1" in alert["log_url"]
    body = request.body.decode()
    for secret in secrets:
        assert secret not in body


# --- the harness: proves the stack with a DAG of its own ------------------------------------------


def test_harness_run_triggered_through_the_rest_api(airflow_stack: AirflowStack) -> None:
    run_id, state, tasks = run_dag(airflow_stack, HARNESS_DAG)
    assert (state, tasks) == ("success", {"fetch_window": "success"})
    assert audit_rows(airflow_stack, HARNESS_DAG, run_id) == [("fetch_window", "success")]
    dag = airflow_stack.api("GET", f"dags/{HARNESS_DAG}")
    assert "usdirect" in {t["name"] for t in dag["tags"]}
    pools = airflow_stack.api("GET", "pools/usdirect_main")
    assert pools["slots"] == 3


def test_harness_backfill_fetches_each_window_once(airflow_stack: AirflowStack) -> None:
    calls_before, task_runs_before = (
        shipments_list_calls(airflow_stack),
        task_runs(airflow_stack, HARNESS_DAG),
    )
    runs = backfill(airflow_stack, HARNESS_DAG, BACKFILL_DAYS)
    assert len(runs) == len(BACKFILL_DAYS) and {r["state"] for r in runs} == {"success"}
    expected = [(d, d + dt.timedelta(days=1)) for d in BACKFILL_DAYS]
    assert windows(airflow_stack, HARNESS_DAG) == expected
    # One list call per task run (a scheduled run may join while the DAG is unpaused): no window
    # is fetched twice and none is skipped.
    new_task_runs = task_runs(airflow_stack, HARNESS_DAG) - task_runs_before
    assert new_task_runs >= len(BACKFILL_DAYS)
    calls = shipments_list_calls(airflow_stack) - calls_before
    audit = airflow_stack.warehouse_rows(
        f"SELECT run_id, window_start, outcome FROM usdirect_runs WHERE dag_id = '{HARNESS_DAG}'"
    )
    assert calls == new_task_runs, (audit, airflow_stack.runs(HARNESS_DAG))


def test_harness_broken_credential_alerts_the_webhook(
    airflow_stack: AirflowStack, broken_api_token: str
) -> None:
    run_id, state, tasks = run_dag(airflow_stack, HARNESS_DAG)
    assert (state, tasks) == ("failed", {"fetch_window": "failed"})
    secrets = [broken_api_token, airflow_stack.sandbox.api_token, airflow_stack.sandbox.feed_url]
    assert_credential_alert(airflow_stack, HARNESS_DAG, run_id, secrets)


# --- the operation DAGs ---------------------------------------------------------------------------


def seed_renamed_orders(stack: AirflowStack, prefix: str) -> list[str]:
    """The platform's valid US Direct orders under new PO numbers, pending in the warehouse (the
    session's other tests seed and send the originals)."""
    frs = [
        fr
        | {"id": fr["id"] + 10_000_000, "fulfillmentRequestNumber": prefix + fr["fulfillmentRequestNumber"]}
        for fr in stack.sandbox.platform("fulfillment-requests")
        if fr["sourceName"] == "US Direct" and not fr.get("sandboxDefect")
    ]
    name, value = conn_env_var(
        "usdirect_warehouse", {"conn_type": "duckdb", "host": str(stack.warehouse_path)}
    )
    with pytest.MonkeyPatch.context() as env:
        env.setenv(name, value)
        wh = Warehouse.from_conn_id("usdirect_warehouse")
        with wh.connect() as conn:
            assert import_fulfillment_requests(wh, conn, frs, source="e2e") == len(frs)
    return [fr["fulfillmentRequestNumber"] for fr in frs]


def test_send_orders_dry_run_triggered_with_unpause_sends_nothing(airflow_stack: AirflowStack) -> None:
    """Trigger {"dry_run": true} with "Unpause on trigger" ticked: Airflow also starts the latest
    scheduled run at once. With automatic: false (the shipped default) it only shows what it would
    send, so no PO reaches US Direct, and people get one reminder."""
    dag_id = "usdirect_send_orders"
    require_dag_file(dag_id)
    stack = airflow_stack
    mine = seed_renamed_orders(stack, "VF-")
    started = time.monotonic()
    run_id = stack.trigger(dag_id, {"dry_run": True})  # unpauses first, as the UI's checkbox does
    assert stack.wait_run(dag_id, run_id, timeout=180) == "success"
    scheduled: list[dict] = []
    while not scheduled and time.monotonic() - started < 180:
        scheduled = [r for r in stack.runs(dag_id) if r["run_type"] == "scheduled" and r["state"] in TERMINAL]
        time.sleep(1)
    settle(stack, dag_id)
    # A quarter-hour may fire while this test runs; its run is scheduled too. The checks below
    # follow the run the unpause started, the earliest.
    scheduled.sort(key=lambda r: r["dag_run_id"])  # scheduled__<logical date>
    assert scheduled and {r["state"] for r in scheduled} == {"success"}, (
        f"{stack.runs(dag_id)}\n{stack.tail_logs()}"
    )
    created = stack.sandbox.creation_counts()
    assert not set(mine) & set(created), created
    marks = ", ".join(f"'{po}'" for po in mine)
    assert stack.warehouse_rows(
        f"SELECT status, count(*) FROM fulfillment_requests WHERE po_number IN ({marks}) GROUP BY 1"
    ) == [("pending", len(mine))]
    held = stack.warehouse_rows(
        f"SELECT counts FROM usdirect_runs WHERE dag_id = '{dag_id}' "
        f"AND run_id = '{scheduled[0]['dag_run_id']}' AND outcome = 'success'"
    )
    assert len(held) == 1 and '"held_for_confirmation": 1' in held[0][0], held
    reminder = stack.alerts.wait_for(
        lambda r: r.json().get("reason") == "orders_awaiting_confirmation" and r.json()["dag_id"] == dag_id,
        timeout=30,
    ).json()
    assert reminder["run_id"] == scheduled[0]["dag_run_id"] and "po_numbers" in reminder["fix"]


def operation_conf(stack: AirflowStack, dag_id: str) -> dict | None:
    """The run conf of an operation DAG's test run; Send Orders first gets pending orders."""
    if dag_id != "usdirect_send_orders":
        return None
    assert stack.seed_orders() > 0
    return {"confirm": True}  # verify first (automatic: false): a person confirms the run


def assert_operation_succeeded(
    airflow_stack: AirflowStack, dag_id: str, run_id: str, state: str, tasks: dict[str, str]
) -> None:
    """What a green run of each operation DAG left behind: tasks, audit rows, warehouse, US Direct."""
    assert state == "success", f"{dag_id}: {tasks}\n{airflow_stack.tail_logs()}"
    assert tasks and set(tasks.values()) <= {"success", "skipped"}, tasks
    outcomes = {outcome for _, outcome in audit_rows(airflow_stack, dag_id, run_id)}
    assert outcomes and outcomes <= {"success", "skipped"}, outcomes
    if dag_id == "usdirect_get_inventory":
        truth = airflow_stack.sandbox.catalog_truth()["rows"]
        offered = sum(r["status"] != "discontinued" for r in truth)  # discontinued items are archived
        counts = airflow_stack.warehouse_rows(
            "SELECT count(*), count(*) FILTER (WHERE NOT archived) FROM usdirect_inventory"
        )
        assert counts == [(CATALOG_ROWS, offered)]
    if dag_id == "usdirect_send_orders":
        created = airflow_stack.sandbox.creation_counts()
        assert created and all(c["created"] == 1 for c in created.values()), created
        submitted = airflow_stack.warehouse_rows(
            "SELECT count(*) FROM fulfillment_requests WHERE status = 'submitted'"
        )
        assert submitted == [(len(created),)]


@pytest.mark.parametrize("dag_id", OPERATION_DAGS)
def test_operation_dag_runs_to_success(airflow_stack: AirflowStack, dag_id: str) -> None:
    require_dag_file(dag_id)
    run_id, state, tasks = run_dag(airflow_stack, dag_id, operation_conf(airflow_stack, dag_id))
    assert_operation_succeeded(airflow_stack, dag_id, run_id, state, tasks)
    if dag_id == "usdirect_send_orders":
        airflow_stack.sandbox.advance_clock(days=4)  # ship (inside the backfill windows) and invoice


def test_get_shipments_backfill_covers_each_window_once_and_rerun_changes_nothing(
    airflow_stack: AirflowStack,
) -> None:
    dag_id = "usdirect_get_shipments"
    require_dag_file(dag_id)
    calls_before = shipments_list_calls(airflow_stack)
    fetches_before = task_runs(airflow_stack, dag_id, "fetch_shipments")
    runs = backfill(airflow_stack, dag_id, BACKFILL_DAYS)
    assert len(runs) == len(BACKFILL_DAYS) and {r["state"] for r in runs} == {"success"}
    assert windows(airflow_stack, dag_id) == [(d, d + dt.timedelta(days=1)) for d in BACKFILL_DAYS]
    fetches = task_runs(airflow_stack, dag_id, "fetch_shipments") - fetches_before
    assert fetches >= len(BACKFILL_DAYS)
    assert shipments_list_calls(airflow_stack) - calls_before >= fetches  # every window asked for
    snapshot = airflow_stack.warehouse_rows(SHIPMENT_STATE)
    assert snapshot, "orders sent on 2026-11-19 (sandbox time) ship inside the backfilled windows"
    rerun = backfill(airflow_stack, dag_id, BACKFILL_DAYS[1:2], reprocess="completed")
    assert [r["state"] for r in rerun] == ["success"]
    assert airflow_stack.warehouse_rows(SHIPMENT_STATE) == snapshot


def test_operation_dag_broken_credential_alerts_the_webhook(
    airflow_stack: AirflowStack, broken_api_token: str
) -> None:
    dag_id = "usdirect_get_inventory_changes"
    require_dag_file(dag_id)
    run_id, state, _ = run_dag(airflow_stack, dag_id)
    assert state == "failed"
    secrets = [broken_api_token, airflow_stack.sandbox.api_token, airflow_stack.sandbox.feed_url]
    assert_credential_alert(airflow_stack, dag_id, run_id, secrets)

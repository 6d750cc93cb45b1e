"""Windows after pauses and outages: the watermark, each run type's window, and Get Shipments on
the sandbox clock (a scheduled run after 16 days, a backfill of an old window, stragglers)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sandbox.runner import SandboxInfo
from tests.support.connections import conn_env_var
from tests.support.dag_runs import run_as
from tests.support.order_flow import check_platform, check_warehouse
from tests.support.orders import FAST_CLIENT, FAST_HTTP, FAST_SANDBOX, usdirect_frs, use_sandbox
from tests.support.paths import REPO
from tests.support.receivers import WebhookReceiver
from tests.support.settings_file import write_settings
from usdirect.hooks.flxpoint import FlxpointHook
from usdirect.hooks.usdirect import UsDirectHook
from usdirect.pipelines import orders, shipments
from usdirect.targets.warehouse import fulfillment_requests as frq
from usdirect.targets.warehouse import order_tables as ot
from usdirect.targets.warehouse.sql import Warehouse
from usdirect.targets.warehouse.watermarks import advance_watermark, read_watermark

UTC = dt.UTC
T = dt.datetime(2026, 11, 20, tzinfo=UTC)
H = dt.timedelta(hours=1)
DAG = "usdirect_get_shipments"


# --- the watermark ------------------------------------------------------------------------------


def test_watermark_moves_forward_only_and_never_past_a_hole(warehouse: Warehouse) -> None:
    both = ("warehouse", "platform")
    assert read_watermark(warehouse, DAG, both) is None
    advance_watermark(warehouse, DAG, "warehouse", (T, T + H), "r1")
    advance_watermark(warehouse, DAG, "warehouse", (T + H, T + 2 * H), "r2")
    assert read_watermark(warehouse, DAG, both) == T + 2 * H
    advance_watermark(warehouse, DAG, "warehouse", (T - 5 * H, T - 4 * H), "backfill-old")
    assert read_watermark(warehouse, DAG, both) == T + 2 * H  # an old window never moves it back
    advance_watermark(warehouse, DAG, "warehouse", (T + 5 * H, T + 6 * H), "backfill-ahead")
    assert read_watermark(warehouse, DAG, both) == T + 2 * H  # nor past the hole it would leave
    advance_watermark(warehouse, DAG, "warehouse", (T + H, T + 6 * H), "r3")
    assert read_watermark(warehouse, DAG, both) == T + 6 * H
    # The platform took less: the DAG resumes where the target that is furthest behind stopped.
    advance_watermark(warehouse, DAG, "platform", (T, T + 3 * H), "r3")
    assert read_watermark(warehouse, DAG, both) == T + 3 * H
    assert read_watermark(warehouse, DAG, ("warehouse",)) == T + 6 * H
    assert read_watermark(warehouse, "another_dag", both) is None


def _operation_run(
    cfg: Any, window: tuple[dt.datetime | None, dt.datetime | None], run_type: str, dag_id: str = DAG
) -> Any:
    from usdirect.operators.base import OperationRun
    from usdirect.targets.warehouse.audit import RunRecord

    account = cfg.accounts[0]
    record = RunRecord(
        run_id="r", dag_id=dag_id, task_id="fetch_shipments", operation="get_shipments", account="main"
    )
    return OperationRun("get_shipments", cfg, account, record, "r", dag_id, window, run_type=run_type)


@pytest.mark.parametrize("targets", [["warehouse"], ["platform"]])
def test_each_run_type_gets_its_window(
    targets: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scheduled, manual and asset-triggered runs start at the watermark after a gap; a backfill
    keeps its interval exactly. Platform-only accounts keep the watermark on the warehouse
    connection too."""
    from usdirect.settings.config import load_config

    monkeypatch.setenv(
        *conn_env_var("usdirect_warehouse", {"conn_type": "duckdb", "host": str(tmp_path / "w.duckdb")})
    )
    cfg = load_config(write_settings(tmp_path, targets, retries=0))
    state = Warehouse.from_conn_id("usdirect_warehouse")
    for target in targets:
        advance_watermark(state, DAG, target, (T - H, T), "r0")
    lookback = dt.timedelta(hours=72)

    on_time = _operation_run(cfg, (T, T + H), "scheduled")
    assert on_time.incremental_window(lookback) == (T, T + H) and on_time.gap is None
    paused = _operation_run(cfg, (T + dt.timedelta(days=3), T + dt.timedelta(days=3) + H), "scheduled")
    assert paused.incremental_window(lookback) == (T, T + dt.timedelta(days=3) + H)
    assert paused.gap == dt.timedelta(days=3)
    assert (paused.record.window_start, paused.record.window_end) == (T, T + dt.timedelta(days=3) + H)
    assert paused.record.counts["gap_hours"] == 72.0
    manual = _operation_run(cfg, (T + 5 * H, T + 6 * H), "manual")  # dag.test / airflow dags test
    assert manual.incremental_window(lookback) == (T, T + 6 * H) and manual.gap == 5 * H
    asset = _operation_run(cfg, (T + 2 * H, T + 2 * H), "asset_triggered")  # no interval of its own
    assert asset.incremental_window(lookback) == (T, T + 2 * H)
    untimed = _operation_run(cfg, (None, None), "manual")
    start, end = untimed.incremental_window(lookback)
    assert start == T and end - dt.datetime.now(UTC) < dt.timedelta(seconds=5)
    for old in ((T - dt.timedelta(days=5), T - dt.timedelta(days=4)), (T + 9 * H, T + 10 * H)):
        backfill = _operation_run(cfg, old, "backfill")
        assert backfill.incremental_window(lookback) == old and backfill.gap is None
    first = _operation_run(cfg, (T, T + H), "scheduled", dag_id="usdirect_other_get_shipments")
    assert first.incremental_window(lookback) == (T, T + H) and first.gap is None

    # A target task moves its watermark with the window its fetch handed on; a fetch from before
    # watermarks existed hands on none, and the watermark stays (the next run reads it again).
    paused.record_window(targets[0], {"items": 3})
    assert read_watermark(state, DAG, targets) == T
    window = {"window_start": T.isoformat(), "window_end": (T + dt.timedelta(days=3) + H).isoformat()}
    for target in targets:
        paused.record_window(target, window)
    assert read_watermark(state, DAG, targets) == T + dt.timedelta(days=3) + H


# --- stragglers ------------------------------------------------------------------------------------


def test_stragglers_are_every_po_not_fully_shipped_and_take_its_new_status(
    sandbox_factory: Any,
    duck_wh: Warehouse,
    orders_template: Any,
    shipments_template: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sb = sandbox_factory(**FAST_SANDBOX)
    use_sandbox(sb, monkeypatch, **FAST_CLIENT)
    with duck_wh.connect() as conn:
        frq.import_fulfillment_requests(duck_wh, conn, usdirect_frs(sb))
    report = orders.send_orders(orders_template, UsDirectHook(), orders.SendOptions(), wh=duck_wh)
    sent = sorted(o.po_number for o in report.outcomes if o.kind == orders.OutcomeKind.SUBMITTED)
    on_hold = sorted(o.po_number for o in report.outcomes if o.order_status == "on_hold")
    assert on_hold, "the sandbox holds orders over 30 lb"
    t0 = sb.clock_now()
    sb.advance_clock(days=1)  # first parcels only; held orders have not shipped
    batch, _ = shipments.fetch_shipments(UsDirectHook(), shipments_template, t0 - H)
    shipments.load_warehouse(duck_wh, batch, "r1")
    sb.advance_clock(days=4)  # second parcels, held orders shipped
    hook = UsDirectHook()
    truth = {po: hook.get_order_shipments(po) for po in sent}
    status = {po: hook.get_order(po)["status"] for po in sent}
    with duck_wh.connect() as conn:
        shipped = dict(
            duck_wh.fetchall(
                conn,
                f"SELECT s.po_number, SUM(i.quantity) FROM {duck_wh.table(ot.SHIPMENTS)} s "
                f"JOIN {duck_wh.table(ot.SHIPMENT_ITEMS)} i USING (shipment_id) GROUP BY 1",
            )
        )
    open_pos = sorted(
        po
        for po in sent
        if status[po] != "cancelled"
        and shipped.get(po, 0) < sum(i["quantity"] for s in truth[po] for i in s["items"])
    )
    partly = [po for po in open_pos if shipped.get(po, 0) > 0]
    assert partly and set(on_hold) <= set(open_pos)

    # Judged at the run's time (5 days after sending), never by the wall clock (the sandbox's
    # clock is ahead of it): a run 1 day after sending finds none old enough.
    assert shipments.straggler_pos(duck_wh, t0 + dt.timedelta(days=1), 72) == []
    stragglers = shipments.straggler_pos(duck_wh, sb.clock_now(), 72)
    assert sorted(stragglers) == open_pos
    # A window after every change: only the lookups find the second parcels and the new statuses.
    batch, counts = shipments.fetch_shipments(
        UsDirectHook(), shipments_template, sb.clock_now() + H, stragglers
    )
    assert counts.changed == 0 and counts.order_status == {po: status[po] for po in open_pos}
    shipments.load_warehouse(duck_wh, batch, "r2", counts.order_status)
    with duck_wh.connect() as conn:
        held = duck_wh.fetchall(
            conn,
            f"SELECT shipment_id, supplier_status FROM {duck_wh.table(ot.SHIPMENTS)} "
            f"WHERE po_number IN ({duck_wh.marks(len(open_pos))}) ORDER BY shipment_id",
            open_pos,
        )
    assert held == sorted((s["shipment_id"], s["status"]) for po in open_pos for s in truth[po])
    with duck_wh.connect() as conn:
        got = dict(
            duck_wh.fetchall(
                conn,
                f"SELECT po_number, order_status FROM {duck_wh.table(ot.FR)} WHERE status = 'submitted'",
            )
        )
    assert got == status
    assert {got[po] for po in on_hold} == {"shipped"}
    assert shipments.straggler_pos(duck_wh, sb.clock_now(), 72) == []


# --- Get Shipments after a pause, on a real Airflow run ---------------------------------------


@pytest.fixture
def paused_env(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    airflow_db: Path,
    sandbox_factory: Callable[..., SandboxInfo],
) -> Callable[[list[str]], tuple[SandboxInfo, Warehouse, WebhookReceiver]]:
    def make(targets: list[str]) -> tuple[SandboxInfo, Warehouse, WebhookReceiver]:
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
            *conn_env_var("gap_alerts", {"conn_type": "http", "host": "127.0.0.1", "port": webhook.port})
        )
        monkeypatch.setenv(
            "USDIRECT_CONFIG", str(write_settings(tmp_path, targets, alerts_conn="gap_alerts", retries=0))
        )
        return sb, Warehouse.from_conn_id("usdirect_warehouse"), webhook

    return make


def _dag(dag_id: str) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    return bag.get_dag(dag_id)


def _fetched(run: Any) -> tuple[dt.datetime, dt.datetime, dict[str, Any]]:
    """The window and counts the run's fetch task handed on (its XCom), for any targets."""
    from airflow.models.xcom import XComModel
    from airflow.settings import Session

    with Session() as session:
        row = session.scalars(
            XComModel.get_many(run_id=run.run_id, dag_ids=DAG, task_ids="fetch_shipments", key="return_value")
        ).one()
        value = XComModel.deserialize_value(row)
    return (
        dt.datetime.fromisoformat(value["window_start"]),
        dt.datetime.fromisoformat(value["window_end"]),
        value,
    )


def _audited_window(wh: Warehouse, run: Any) -> tuple[dt.datetime, dt.datetime, dict[str, Any]]:
    """The window and counts on the fetch task's usdirect_runs row (warehouse accounts)."""
    p = wh.placeholder
    with wh.connect() as conn:
        ((start, end, counts),) = wh.fetchall(
            conn,
            f"SELECT window_start, window_end, counts FROM {wh.table('usdirect_runs')} "
            f"WHERE run_id = {p} AND task_id = 'fetch_shipments' AND outcome = 'success'",
            (run.run_id,),
        )
    return start.astimezone(UTC), end.astimezone(UTC), json.loads(counts)


@pytest.mark.parametrize("targets", [["warehouse", "platform"], ["platform"]])
def test_shipments_after_a_16_day_pause_reach_both_targets(
    targets: list[str],
    paused_env: Callable[[list[str]], tuple[SandboxInfo, Warehouse, WebhookReceiver]],
    orders_template: Any,
) -> None:
    sb, wh, webhook = paused_env(targets)
    state = wh
    target_wh = wh if "warehouse" in targets else None
    if target_wh is not None:
        with wh.connect() as conn:
            frq.import_fulfillment_requests(wh, conn, usdirect_frs(sb))
    report = orders.send_orders(
        orders_template, UsDirectHook(), orders.SendOptions(), wh=target_wh, platform=FlxpointHook()
    )
    sent = sorted(o.po_number for o in report.outcomes if o.kind == orders.OutcomeKind.SUBMITTED)
    t0 = sb.clock_now()
    sb.advance_clock(days=1)  # first parcels
    first = _dag(DAG).test(logical_date=t0 + H)  # a manual run: interval [t0, t0+1h)
    assert str(first.run_type) == "manual" and first.state == "success"
    assert read_watermark(state, DAG, targets) == t0 + H

    sb.advance_clock(days=16)  # the DAG is paused: second parcels ship, every status moves on
    hook = UsDirectHook()
    truth = {po: hook.get_order_shipments(po) for po in sent}
    assert any(len(ships) == 2 for ships in truth.values())
    expected_stragglers = 0
    if target_wh is not None:
        expected_stragglers = len(shipments.straggler_pos(wh, sb.clock_now(), 72))
        assert expected_stragglers > 0  # held and partly shipped POs are looked up as well
    latest = sb.clock_now().replace(minute=0) - H
    run = run_as(_dag(DAG), "scheduled", (latest, latest + H))
    assert run.state == "success", {ti.task_id: ti.state for ti in run.get_task_instances()}

    start, end, counts = _fetched(run)
    assert (start, end) == (t0 + H, latest + H)  # from the watermark, not the data interval
    assert counts["stragglers_checked"] == expected_stragglers
    assert read_watermark(state, DAG, targets) == latest + H
    gap_hours = (latest - (t0 + H)).total_seconds() / 3600
    assert gap_hours > 14 * 24
    alert = webhook.wait_for(lambda r: r.json().get("reason") == "window_gap").json()
    assert alert["kind"] == "needs_attention" and alert["dag_id"] == DAG
    assert f"nothing was read for {gap_hours:.1f} hours" in alert["text"]
    assert "max_gap_hours (336)" in alert["text"]

    if target_wh is not None:
        assert _audited_window(wh, run) == (t0 + H, latest + H, _audited_window(wh, run)[2])
        assert _audited_window(wh, run)[2]["gap_hours"] == round(gap_hours, 1)
        check_warehouse(wh, truth, {})
        status = {po: hook.get_order(po)["status"] for po in sent}
        with wh.connect() as conn:
            got = dict(
                wh.fetchall(
                    conn,
                    f"SELECT po_number, order_status FROM {wh.table(ot.FR)} WHERE status = 'submitted'",
                )
            )
        assert got == status
    check_platform(sb, truth, {})

    # A backfill of an old window reads exactly that window and leaves the watermark alone.
    old = (t0 + dt.timedelta(days=2), t0 + dt.timedelta(days=2) + H)
    backfill = run_as(_dag(DAG), "backfill", old)
    assert backfill.state == "success"
    start, end, counts = _fetched(backfill)
    assert (start, end) == old
    if target_wh is not None:
        assert (
            _audited_window(wh, backfill)[:2] == old and "gap_hours" not in _audited_window(wh, backfill)[2]
        )
    assert counts["changed_in_window"] == sum(
        1
        for ships in truth.values()
        for s in ships
        if dt.datetime.fromisoformat(s["updated_at"].replace("Z", "+00:00"))
        >= old[0] - dt.timedelta(minutes=10)
    )
    assert read_watermark(state, DAG, targets) == latest + H


def test_a_po_cancelled_while_processing_is_recorded_by_get_shipments_and_not_looked_up_again(
    paused_env: Callable[[list[str]], tuple[SandboxInfo, Warehouse, WebhookReceiver]],
    orders_template: Any,
) -> None:
    """US Direct cancels a PO after accepting it: the next run whose straggler lookups reach it
    records `cancelled`, the view calls it terminal, and later runs leave it alone."""
    from tests.support.order_tables import reconciliation_rows

    sb, wh, _ = paused_env(["warehouse"])
    p = wh.placeholder
    with wh.connect() as conn:
        frq.import_fulfillment_requests(wh, conn, usdirect_frs(sb))
    report = orders.send_orders(orders_template, UsDirectHook(), orders.SendOptions(), wh=wh)
    po = next(
        o.po_number
        for o in report.outcomes
        if o.kind == orders.OutcomeKind.SUBMITTED and o.order_status == "received"
    )
    t0 = sb.clock_now()
    sb.advance_clock(hours=2)
    hook = UsDirectHook()
    assert hook.get_order(po)["status"] == "processing"
    assert sb.cancel_order(po)["status"] == "cancelled"  # before its first parcel (20 h)
    sb.advance_clock(hours=22)
    first = _dag(DAG).test(logical_date=t0 + H)  # first parcels; nothing old enough to look up yet
    assert first.state == "success" and _fetched(first)[2]["stragglers_checked"] == 0

    sb.advance_clock(days=3)  # past straggler_age_hours (72): every other order has shipped
    assert hook.get_order(po)["status"] == "cancelled" and hook.get_order_shipments(po) == []
    latest = sb.clock_now().replace(minute=0) - H
    stragglers = shipments.straggler_pos(wh, latest + H, 72)
    assert po in stragglers
    run = run_as(_dag(DAG), "scheduled", (latest, latest + H))
    assert run.state == "success", {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert _fetched(run)[2]["stragglers_checked"] == len(stragglers)
    with wh.connect() as conn:
        ((status,),) = wh.fetchall(
            conn, f"SELECT order_status FROM {wh.table(ot.FR)} WHERE po_number = {p}", (po,)
        )
    assert status == "cancelled"
    assert (reconciliation_rows(wh)[po]["state"], reconciliation_rows(wh)[po]["fulfillment_state"]) == (
        "cancelled",
        "cancelled",
    )

    lookups = sb.stats()["requests"]["GET /v1/orders/{po_number}"]
    again = run_as(_dag(DAG), "scheduled", (latest + H, latest + 2 * H))
    assert again.state == "success"
    assert _fetched(again)[2]["stragglers_checked"] == 0  # the cancelled PO is terminal
    assert sb.stats()["requests"]["GET /v1/orders/{po_number}"] == lookups

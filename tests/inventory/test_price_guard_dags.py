"""The price anomaly guard end to end: both inventory DAGs through ``dag.test()`` against a sandbox
catalog version that corrupts some prices (cost x0.01, cost x10, MAP above MSRP, a new SKU priced
above its MSRP), into DuckDB / Postgres and the platform, with the needs-attention alert caught by
a webhook receiver."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox.runner import SandboxInfo
from tests.support.connections import conn_env_var, warehouse_conn
from tests.support.inventory import (
    Env,
    assert_platform_matches,
    assert_warehouse_matches,
    held_changes,
    inventory,
    task_counts,
    truth,
)
from tests.support.receivers import WebhookReceiver
from tests.support.settings_file import write_settings
from usdirect.targets.warehouse.sql import Warehouse

PRICES = ("cost", "msrp", "map")
Make = Callable[..., tuple[Env, WebhookReceiver]]


@pytest.fixture
def make_guarded_env(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    airflow_db: Path,
    sandbox_factory: Callable[..., SandboxInfo],
    request: pytest.FixtureRequest,
) -> Iterator[Make]:
    """``make_env`` with alerts to a webhook receiver and the operations' settings overridden."""
    receivers: list[WebhookReceiver] = []

    def make(kind: str, targets: list[str], size: int, **operation: Any) -> tuple[Env, WebhookReceiver]:
        sb = sandbox_factory(catalog_size=size)
        for conn_id, conn in sb.connections().items():
            conn["extra"] = {**conn.get("extra", {}), "max_attempts": 3, "backoff_base": 0.05}
            monkeypatch.setenv(*conn_env_var(conn_id, conn))
        monkeypatch.setenv(*conn_env_var("usdirect_warehouse", warehouse_conn(kind, request, tmp_path)))
        webhook = WebhookReceiver().start()
        receivers.append(webhook)
        monkeypatch.setenv(
            *conn_env_var("guard_alerts", {"conn_type": "http", "host": "127.0.0.1", "port": webhook.port})
        )
        schema = f"inv_guard_{uuid.uuid4().hex[:8]}" if kind == "postgres" else None
        path = write_settings(tmp_path, targets, alerts_conn="guard_alerts", retries=0, schema=schema)
        raw = yaml.safe_load(path.read_text())
        for name in ("get_inventory", "get_inventory_changes"):
            raw["operations"][name].update(operation)
        path.write_text(yaml.safe_dump(raw))
        monkeypatch.setenv("USDIRECT_CONFIG", str(path))
        return Env(sb, Warehouse.from_conn_id("usdirect_warehouse", schema=schema), tmp_path), webhook

    yield make
    for receiver in receivers:
        receiver.stop()


def corrupt(env: Env, count: int, new: int) -> tuple[set[str], set[str], dict[str, str]]:
    """A catalog version with broken prices; (existing SKUs, new SKUs, the reason each one trips)."""
    bad = env.sandbox.corrupt_prices(count, new)
    reasons = {f"USD-{s}": kind for kind, skus in bad.items() for s in skus}
    existing = {s for s, kind in reasons.items() if kind != "new"}
    return existing, set(reasons) - existing, reasons


def prices(values: dict[str, Any]) -> dict[str, Any]:
    return {k: values[k] for k in PRICES}


def platform_prices(env: Env) -> dict[str, dict[str, Any]]:
    from tests.support.inventory import money

    return {
        v["sku"]: v | {k: money(str(v[k])) if v.get(k) is not None else None for k in PRICES}
        for v in env.sandbox.platform("variants")
    }


def held_per_task(env: Env, run: Any, task_id: str) -> list[int]:
    """``held`` of each task instance (one per partition) on its usdirect_runs row."""
    p = env.wh.placeholder
    with env.wh.connect() as conn:
        rows = env.wh.fetchall(
            conn,
            f"SELECT counts FROM {env.wh.table('usdirect_runs')} WHERE run_id = {p} AND task_id = {p} "
            "AND outcome = 'success'",
            (run.run_id, task_id),
        )
    return [int(json.loads(r[0]).get("held", 0)) for r in rows]


def alert_texts(webhook: WebhookReceiver) -> list[str]:
    return [json.dumps(r.json()) for r in webhook.requests if "prices_held" in r.body.decode()]


def test_full_feed_holds_corrupt_prices_in_duckdb_and_on_the_platform(make_guarded_env: Make) -> None:
    """Partitioned (slices of 100 SKUs), both targets: held SKUs keep their prices in the live row and on the
    platform while their quantity flows; one is accepted by a person, the rest confirmed by feeds."""
    env, webhook = make_guarded_env(
        "duckdb", ["warehouse", "platform"], 300, partition_rows=100, price_guard={"confirm_after_feeds": 3}
    )
    assert env.run("usdirect_get_inventory").state == "success"
    good = truth(env.sandbox)
    existing, new, reasons = corrupt(env, count=2, new=1)
    env.sandbox.next_catalog_version(price=0.0, quantity=0.2, new=0.0, removed=0.0)

    run = env.run("usdirect_get_inventory")
    assert run.state == "success", env.task_states(run)
    now = truth(env.sandbox)
    live, variants = inventory(env.wh), platform_prices(env)
    for sku in existing:
        assert prices(live[sku]) == prices(good[sku]) == prices(variants[sku]), sku
        assert live[sku]["quantity"] == now[sku]["quantity"] == variants[sku]["quantity"], sku
    assert not new & set(live) and not new & set(variants)  # not created anywhere
    for sku in set(now) - existing - new:  # everything else flowed
        assert {k: live[sku][k] for k in now[sku]} == now[sku], sku
    held = held_changes(env.wh)
    assert set(held) == existing | new
    for sku in existing:
        h = held[sku]
        assert (h["old_cost"], h["old_msrp"], h["old_map"]) == tuple(good[sku][k] for k in PRICES), sku
        assert (h["new_cost"], h["new_msrp"], h["new_map"]) == tuple(now[sku][k] for k in PRICES), sku
        assert reasons[sku] in h["reason"].split(","), (sku, h["reason"])
        assert h["times_seen"] == 1 and h["resolved_at"] is None
    assert held[next(iter(new))]["old_cost"] is None
    # Each partition decided for its own SKUs; the load and the publish agree.
    loads = held_per_task(env, run, "load_inventory_warehouse")
    publishes = held_per_task(env, run, "publish_inventory_platform")
    assert len(loads) == len(publishes) > 1, (loads, publishes)
    assert sum(loads) == sum(publishes) == len(existing | new), (loads, publishes)
    (alert,) = alert_texts(webhook)
    assert all(sku in alert for sku in existing | new), alert

    # The next run downloads the feed again (no 304 while prices are held); a person accepts one SKU.
    accepted = sorted(existing)[0]
    run = env.run("usdirect_get_inventory", run_conf={"accept_held": [accepted]})
    assert run.state == "success", env.task_states(run)
    assert task_counts(env, run, "record_feed_state")["held"] == len(existing | new) - 1
    live, variants = inventory(env.wh), platform_prices(env)
    assert prices(live[accepted]) == prices(now[accepted]) == prices(variants[accepted])
    held = held_changes(env.wh)
    assert held[accepted]["resolved_how"] == "accepted"
    assert {held[s]["times_seen"] for s in existing | new if s != accepted} == {2}

    # A third feed with the same prices confirms the rest: both targets now match the catalog.
    run = env.run("usdirect_get_inventory")
    assert run.state == "success", env.task_states(run)
    assert {h["resolved_how"] for s, h in held_changes(env.wh).items() if s != accepted} == {"confirmed"}
    assert_warehouse_matches(env)
    assert_platform_matches(env)


def test_platform_only_account_holds_against_the_ledger_in_postgres(make_guarded_env: Make) -> None:
    env, webhook = make_guarded_env("postgres", ["platform"], 200)
    assert env.run("usdirect_get_inventory").state == "success"
    good = truth(env.sandbox)
    existing, new, _ = corrupt(env, count=1, new=1)
    run = env.run("usdirect_get_inventory")
    assert run.state == "success", env.task_states(run)
    variants = platform_prices(env)
    for sku in existing:
        assert prices(variants[sku]) == prices(good[sku]), sku
    assert not new & set(variants)
    assert set(held_changes(env.wh)) == existing | new
    assert len(alert_texts(webhook)) == 1
    # The same prices in the next feed (confirm_after_feeds: 2 by default) are let through.
    run = env.run("usdirect_get_inventory")
    assert run.state == "success", env.task_states(run)
    assert {h["resolved_how"] for h in held_changes(env.wh).values()} == {"confirmed"}
    assert_platform_matches(env)


def test_changes_dag_holds_and_a_full_feed_run_accepts_all(make_guarded_env: Make) -> None:
    env, webhook = make_guarded_env("postgres", ["warehouse"], 200)
    assert env.run("usdirect_get_inventory").state == "success"
    good = truth(env.sandbox)
    start = env.sandbox.clock_now()
    existing, _, _ = corrupt(env, count=1, new=0)
    run = env.run("usdirect_get_inventory_changes", logical_date=start + dt.timedelta(minutes=15))
    assert run.state == "success", env.task_states(run)
    assert held_per_task(env, run, "load_inventory_warehouse") == [len(existing)]
    live = inventory(env.wh)
    for sku in existing:
        assert prices(live[sku]) == prices(good[sku]), sku
    assert set(held_changes(env.wh)) == existing
    assert len(alert_texts(webhook)) == 1
    run = env.run("usdirect_get_inventory", run_conf={"accept_all_held": True})
    assert run.state == "success", env.task_states(run)
    assert {h["resolved_how"] for h in held_changes(env.wh).values()} == {"accepted"}
    assert_warehouse_matches(env)

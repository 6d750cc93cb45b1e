"""The price anomaly guard at the targets, on real DuckDB and Postgres: which SKUs are held, what the
live row and the publish plan keep, what ``usdirect_held_changes`` records, and that repeating a
step (a retry) holds the same SKUs without counting the run twice."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from sandbox.runner import SandboxInfo
from tests.support.connections import conn_env_var
from tests.support.inventory import T0, held_changes, inventory, mapped_file, row
from usdirect.domain.held_changes import PriceRule
from usdirect.hooks.flxpoint import FlxpointHook
from usdirect.targets.platform.inventory import adopt_published, plan_publish, publish
from usdirect.targets.warehouse.inventory import load_full
from usdirect.targets.warehouse.sql import Warehouse

ACCOUNT = "main"
RULE = PriceRule()  # 60% change, floor 0.05, confirmed by 2 runs
NOW = T0 + dt.timedelta(hours=1)


def _catalog() -> list[dict[str, Any]]:
    return [row(str(100 + i), cost="10.00", msrp="20.00", map="15.00", quantity=5) for i in range(6)]


def _corrupted() -> list[dict[str, Any]]:
    """Prices broken in four ways, one new SKU priced above its MSRP, one plain quantity change."""
    rows = _catalog()
    rows[0].update(cost=Decimal("0.10"), quantity=7)  # cost x0.01 (and below the floor); quantity flows
    rows[1].update(cost=Decimal("100.00"))  # cost x10 (and above the MSRP)
    rows[2].update(map=Decimal("25.00"))  # MAP above the MSRP
    rows[3].update(cost=Decimal("11.00"))  # a normal price change: flows
    rows[4].update(quantity=0)  # a quantity change: flows
    new = row("200", cost="10.00", msrp="20.00", map="30.00")
    return [*rows, new]


def test_warehouse_holds_anomalies_and_a_retry_holds_the_same(wh: Warehouse, tmp_path: Path) -> None:
    load_full(wh, ACCOUNT, "r1", mapped_file(tmp_path, _catalog(), "v1"), T0, guard=RULE)
    corrupted = mapped_file(tmp_path, _corrupted(), "v2")
    first = load_full(wh, ACCOUNT, "r2", corrupted, NOW, guard=RULE)
    retried = NOW + dt.timedelta(minutes=1)
    again = load_full(wh, ACCOUNT, "r2", corrupted, retried, guard=RULE)  # the task retried
    assert first.held == again.held == 4
    assert (first.updated, again.updated) == (3, 0)  # held SKUs are not rewritten while nothing else changed
    live = inventory(wh)
    assert live["USD-100"]["cost"] == Decimal("10.00") and live["USD-100"]["quantity"] == 7
    assert live["USD-101"]["cost"] == Decimal("10.00")
    assert live["USD-102"]["map"] == Decimal("15.00")
    assert live["USD-103"]["cost"] == Decimal("11.00") and live["USD-104"]["quantity"] == 0
    assert "USD-200" not in live  # a new SKU priced wrong is not created
    held = held_changes(wh)
    assert set(held) == {"USD-100", "USD-101", "USD-102", "USD-200"}
    assert held["USD-100"]["reason"] == "cost_drop"
    assert (held["USD-100"]["old_cost"], held["USD-100"]["new_cost"]) == (Decimal("10.00"), Decimal("0.10"))
    assert held["USD-101"]["reason"] == "cost_rise,cost_above_msrp"
    assert held["USD-102"]["reason"] == "map_above_msrp" and held["USD-102"]["fields"] == "map"
    assert held["USD-200"]["old_cost"] is None and held["USD-200"]["reason"] == "map_above_msrp"
    assert {h["times_seen"] for h in held.values()} == {1}
    assert not any(h["resolved_at"] for h in held.values())

    # A person accepts one SKU; the next feed (a new run) brings the same prices and confirms the rest.
    load_full(wh, ACCOUNT, "r3", corrupted, NOW, guard=PriceRule(accept=frozenset({"USD-101"})))
    held = held_changes(wh)
    assert held["USD-101"]["resolved_how"] == "accepted" and inventory(wh)["USD-101"]["cost"] == 100
    confirmed = {s for s, h in held.items() if h["resolved_how"] == "confirmed"}
    assert confirmed == {"USD-100", "USD-102", "USD-200"}
    live = inventory(wh)
    assert live["USD-100"]["cost"] == Decimal("0.10") and live["USD-200"]["map"] == Decimal("30.00")


def test_held_change_clears_when_the_feed_recovers(wh: Warehouse, tmp_path: Path) -> None:
    load_full(wh, ACCOUNT, "r1", mapped_file(tmp_path, _catalog(), "v1"), T0, guard=RULE)
    load_full(wh, ACCOUNT, "r2", mapped_file(tmp_path, _corrupted(), "v2"), NOW, guard=RULE)
    load_full(wh, ACCOUNT, "r3", mapped_file(tmp_path, _catalog(), "v3"), NOW, guard=RULE)
    held = held_changes(wh)
    assert {held[s]["resolved_how"] for s in ("USD-100", "USD-101", "USD-102")} == {"cleared"}
    assert held["USD-200"]["resolved_at"] is None  # not in the recovered feed: still held
    assert inventory(wh)["USD-100"]["cost"] == Decimal("10.00")


def test_platform_plan_keeps_ledger_prices(wh: Warehouse, tmp_path: Path) -> None:
    """A platform-only account: the ledger's values are the last good ones."""
    adopt_published(wh, ACCOUNT, "r1", mapped_file(tmp_path, _catalog(), "v1"))
    writable = frozenset({"title", "cost", "msrp", "map", "quantity", "archived"})
    corrupted = mapped_file(tmp_path, _corrupted(), "v2")
    for attempt in range(2):  # planned twice in one run (a retry): same decision, counted once
        plan = plan_publish(
            wh, ACCOUNT, corrupted, tmp_path / f"plan{attempt}", writable, full=True, guard=RULE, run_id="r2"
        )
        assert plan.held == 4
        updates = {r["sku"]: r for r in pq.read_table(plan.updates).to_pylist()}
        assert set(updates) == {"USD-100", "USD-103", "USD-104"}  # price-only anomalies: nothing to send
        assert updates["USD-100"]["cost"] == Decimal("10.00") and updates["USD-100"]["quantity"] == 7
        assert pq.read_table(plan.creates).num_rows == 0
    assert {h["times_seen"] for h in held_changes(wh).values()} == {1}


def test_price_guard_settings_are_checked_with_the_key_named(tmp_path: Path) -> None:
    from usdirect.operators.inventory_deliver import UsDirectInventoryChangesToWarehouseOperator
    from usdirect.settings.config import ConfigError, operation_config

    step = UsDirectInventoryChangesToWarehouseOperator(
        task_id="load", account_id="main", template="t.yaml", price_guard={"confirm_after_feeds": 0}
    )
    settings = {
        "schedule": None,
        "template": "t.yaml",
        "price_guard": step._setting_arguments()["price_guard"],
    }
    with pytest.raises(ConfigError, match=r"price_guard\.confirm_after_feeds: Input should be greater than"):
        operation_config(tmp_path / "dag.py", "get_inventory_changes", {"id": "main"}, settings)
    settings["price_guard"] = {"enabled": False}
    cfg = operation_config(tmp_path / "dag.py", "get_inventory_changes", {"id": "main"}, settings)
    assert cfg.operations["get_inventory_changes"].price_guard.enabled is False


def test_held_sku_the_platform_lost_is_created_with_the_held_prices(
    sandbox_factory: Callable[..., SandboxInfo], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The ledger says published, the platform answers notFound: the SKU is created from the feed
    row, but with the prices the plan sent (the guard's), not the feed's corrupt ones."""
    sb = sandbox_factory(catalog_size=10, platform_rate_limit=0)
    conns = sb.connections()
    conns["flxpoint_default"]["extra"] = {"rate_limit": 50}
    monkeypatch.setenv(*conn_env_var("flxpoint_default", conns["flxpoint_default"]))
    monkeypatch.setenv(
        *conn_env_var("guard_state", {"conn_type": "duckdb", "host": str(tmp_path / "s.duckdb")})
    )
    wh = Warehouse.from_conn_id("guard_state")
    adopt_published(wh, ACCOUNT, "r1", mapped_file(tmp_path, _catalog(), "v1"))  # none of it is there
    writable = frozenset({"title", "cost", "msrp", "map", "quantity", "archived"})
    corrupted = mapped_file(tmp_path, _corrupted(), "v2")
    plan = plan_publish(
        wh, ACCOUNT, corrupted, tmp_path / "plan", writable, full=True, guard=RULE, run_id="r2"
    )
    counts = publish(FlxpointHook(), wh, ACCOUNT, "r2", plan, writable, mapped=corrupted)
    assert counts.created == counts.not_found == 3
    variants = {v["sku"]: v for v in sb.platform("variants")}
    assert (variants["USD-100"]["cost"], variants["USD-100"]["quantity"]) == (10.0, 7)

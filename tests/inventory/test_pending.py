"""A SKU first seen in the changes API (``/v1/inventory`` has no title, brand, UPC or weight) is
held as ``pending_full_feed`` and never created on the platform half-empty; the next full feed
brings its whole record, and only then is it created."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from tests.support.inventory import Env, inventory, task_counts, truth


def test_sku_first_seen_in_changes_waits_for_the_full_feed(make_env: Callable[..., Env]) -> None:
    env = make_env("postgres", ["warehouse", "platform"], catalog_size=300)
    assert env.run("usdirect_get_inventory").state == "success"
    known = set(inventory(env.wh))
    now = env.sandbox.clock_now()
    env.sandbox.next_catalog_version(price=0.02, quantity=0.05, new=0.05, removed=0.0)
    first_seen = set(truth(env.sandbox)) - known
    new = {sku for sku in first_seen if not truth(env.sandbox)[sku]["archived"]}  # to be created
    assert new

    run = env.run("usdirect_get_inventory_changes", logical_date=now + dt.timedelta(minutes=15))
    assert run.state == "success", env.task_states(run)
    stored = inventory(env.wh)
    assert first_seen <= set(stored)
    for sku in first_seen:
        r = stored[sku]
        assert r["pending_full_feed"] is True and r["title"] is None and r["upc"] is None, sku
        assert r["quantity"] == truth(env.sandbox)[sku]["quantity"], sku  # its changes are kept
    assert not any(r["pending_full_feed"] for sku, r in stored.items() if sku in known)
    assert task_counts(env, run, "load_inventory_warehouse")["pending"] == len(first_seen)
    assert not new & {v["sku"] for v in env.sandbox.platform("variants")}  # never created half-empty

    full = env.run("usdirect_get_inventory")
    assert full.state == "success", env.task_states(full)
    stored = inventory(env.wh)
    variants = {v["sku"]: v for v in env.sandbox.platform("variants")}
    parents = {p["sku"]: p for p in env.sandbox.platform("parents")}
    assert not any(stored[sku]["pending_full_feed"] for sku in first_seen)
    for sku in new:
        r = stored[sku]
        assert r["title"] and r["brand"] and r["upc"], sku
        assert variants[sku]["title"] == r["title"] and variants[sku]["upc"] == r["upc"], sku
        assert parents[sku]["manufacturer"] == r["brand"], sku

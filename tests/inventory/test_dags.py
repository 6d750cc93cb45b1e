"""Both inventory DAGs through ``dag.test()`` against the sandbox, into DuckDB / Postgres and the
platform; every check compares values with the sandbox's ground truth."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable

from sandbox.faults import FaultKind
from tests.support.inventory import (
    Env,
    assert_no_429,
    assert_platform_matches,
    assert_warehouse_matches,
    history,
    inventory,
    ok_count,
    task_counts,
    truth,
)

# --------------------------------------------------------------------------------------------- expectations


# --------------------------------------------------------------------------------------------- tests


def test_full_feed_duckdb_and_platform(make_env: Callable[..., Env]) -> None:
    env = make_env("duckdb", ["warehouse", "platform"], catalog_size=300, dirty=True)
    # The first download is cut short: it is retried, never loaded as a short feed.
    env.sandbox.set_faults([{"endpoint": "GET /feeds/*", "kind": FaultKind.TRUNCATE, "times": 1}])
    run = env.run("usdirect_get_inventory")
    assert run.state == "success", env.task_states(run)
    feed_calls = next(v for k, v in env.sandbox.stats()["requests"].items() if k.startswith("GET /feeds/"))
    # cut short, then retried
    assert feed_calls.get(FaultKind.TRUNCATE.counter) == 1 and feed_calls.get("200") == 2
    assert_warehouse_matches(env)
    assert_platform_matches(env)
    assert_no_429(env)

    # The rejects table holds exactly the dirty rows, each with the right reason.
    dirty = env.sandbox.catalog_truth()["dirty_rows"]
    with env.wh.connect() as conn:
        cur = conn.cursor()
        cur.execute(
            f"SELECT row_number, key, reason FROM {env.wh.table('usdirect_rejects')} ORDER BY row_number"
        )
        rejects = cur.fetchall()
    reasons = {
        "blank_sku": "sku is required",
        "negative_quantity": "negative quantity",
        "non_numeric_quantity": "quantity: not a valid int",
        "unparseable_price": "cost: not a valid decimal",
        "wrong_column_count": "malformed CSV row",
        "duplicate_sku": "duplicate sku",
    }
    assert len(rejects) == len(dirty)
    by_row = {r[0]: r for r in rejects}
    for d in dirty:
        _, key, reason = by_row[d["line"] - 1]
        assert reasons[d["kind"]] in reason, (d, reason)
        assert (key or "").endswith(d["sku"]), (d, key)

    # Same feed again: 304, nothing loaded or published.
    before = env.platform_calls()
    again = env.run("usdirect_get_inventory")
    states = env.task_states(again)
    assert states["fetch_feed"] == "skipped" and states["publish_inventory_platform"] == "skipped"
    assert env.platform_calls() == before

    # Next catalog version: values, archive of removed SKUs, history, exact call count.
    old = set(truth(env.sandbox))
    env.sandbox.next_catalog_version(price=0.05, quantity=0.2, new=0.03, removed=0.03)
    truth_before = {sku: dict(v) for sku, v in inventory(env.wh).items()}
    before = env.platform_calls()
    run = env.run("usdirect_get_inventory")
    assert run.state == "success", env.task_states(run)
    after = env.platform_calls()
    gone = old - set(truth(env.sandbox))
    assert gone
    # The first feed that lacks them archives nothing (it may be a download cut at a row boundary):
    # they stay live in both targets, marked missing, and the feed's validators are not kept.
    gone_live = {sku for sku in gone if not truth_before[sku]["archived"]}
    stored = inventory(env.wh)
    assert gone_live and all(
        not stored[s]["archived"] and stored[s]["missing_feed_seq"] == 2 for s in gone_live
    )
    variants = {v["sku"]: v for v in env.sandbox.platform("variants")}
    assert all(not variants[s]["archived"] for s in gone_live if s in variants)
    assert task_counts(env, run, "load_inventory_warehouse")["missing"] == len(gone_live)
    assert task_counts(env, run, "publish_inventory_platform")["missing"] == len(gone_live & set(variants))
    # The next good feed (downloaded again, no 304) that still lacks them archives them.
    confirm = env.run("usdirect_get_inventory")
    assert confirm.state == "success" and env.task_states(confirm)["fetch_feed"] == "success"
    assert task_counts(env, confirm, "load_inventory_warehouse")["archived"] == len(gone_live)
    expected = assert_warehouse_matches(env, gone)
    assert_platform_matches(env, gone)
    assert_no_429(env)
    confirmed = env.platform_calls()
    assert (
        ok_count(confirmed, "PUT /inventory/variants") - ok_count(after, "PUT /inventory/variants")
        == (task_counts(env, confirm, "publish_inventory_platform")["planned_calls"])
    )
    changed_tracked = {
        sku
        for sku, want in expected.items()
        if sku in truth_before
        and any(truth_before[sku][f] != want[f] for f in ("cost", "msrp", "map", "quantity", "status"))
    }
    open_rows = [h for h in history(env.wh) if h["valid_to"] is None]
    newest = {h["sku"]: h for h in open_rows}
    assert {h["sku"] for h in history(env.wh) if h["run_id"] == run.run_id} == changed_tracked
    for sku in changed_tracked:
        assert (
            newest[sku]["cost"] == expected[sku]["cost"]
            and newest[sku]["quantity"] == expected[sku]["quantity"]
        )
    puts = ok_count(after, "PUT /inventory/variants") - ok_count(before, "PUT /inventory/variants")
    posts = ok_count(after, "POST /inventory/parents") - ok_count(before, "POST /inventory/parents")
    counts = task_counts(env, run, "publish_inventory_platform")
    assert puts == counts["put_calls"] and posts == counts["post_calls"]
    assert puts + posts == counts["planned_calls"]


def test_guard_trips_on_empty_and_short_feeds(make_env: Callable[..., Env]) -> None:
    env = make_env("duckdb", ["warehouse"], catalog_size=300)
    assert env.run("usdirect_get_inventory").state == "success"
    stored = inventory(env.wh)
    for mode, share in (("empty", None), ("short", 0.5)):
        env.sandbox.set_feed_mode(mode, share=share)
        run = env.run("usdirect_get_inventory")
        states = env.task_states(run)
        assert run.state == "failed" and states["map_feed"] == "failed", states
        assert states["load_inventory_warehouse"] != "success"
        assert inventory(env.wh) == stored  # nothing archived
    # A person accepts the cut for one run.
    run = env.run("usdirect_get_inventory", run_conf={"allow_shrink": True})
    assert run.state == "success", env.task_states(run)
    newly_archived = {s for s, r in inventory(env.wh).items() if r["archived"] and not stored[s]["archived"]}
    assert newly_archived == {s for s in sorted(stored)[150:] if not stored[s]["archived"]}


def test_feed_not_recorded_until_every_target_took_it(make_env: Callable[..., Env]) -> None:
    """A run whose publish failed leaves no validators behind: the next run gets the feed (no 304)."""
    env = make_env("duckdb", ["warehouse", "platform"], catalog_size=100)
    held = {v["sku"] for v in env.sandbox.platform("variants")}  # the platform's own, read by the reconcile
    env.sandbox.set_faults(
        [{"endpoint": "POST /inventory/parents", "kind": FaultKind.HTTP_500, "skip": 1, "times": 1000}]
    )
    run = env.run("usdirect_get_inventory")
    states = env.task_states(run)
    assert (
        states["publish_inventory_platform"] == "failed" and states["load_inventory_warehouse"] == "success"
    )
    assert states["record_feed_state"] != "success"
    env.sandbox.clear_faults()
    run = env.run("usdirect_get_inventory")
    states = env.task_states(run)
    assert run.state == "success" and states["fetch_feed"] == "success", states
    # Every live SKU is created exactly once, except the ones the platform already held (the first
    # publish reconciles: it reads them and updates them instead of creating them again).
    live = {sku for sku, r in truth(env.sandbox).items() if not r["archived"]}
    assert held and ok_count(env.platform_calls(), "POST /inventory/parents") == math.ceil(
        len(live - held) / 20
    )
    assert_platform_matches(env)


def test_changes_dag_into_postgres_and_platform(make_env: Callable[..., Env]) -> None:
    env = make_env("postgres", ["warehouse", "platform"], catalog_size=300)
    assert env.run("usdirect_get_inventory").state == "success"
    discontinued = {sku for sku, r in truth(env.sandbox).items() if r["archived"]}
    now = env.sandbox.clock_now()
    env.sandbox.next_catalog_version(price=0.05, quantity=0.1, new=0.0, removed=0.0)
    window_end = now + dt.timedelta(minutes=15)
    run = env.run("usdirect_get_inventory_changes", logical_date=window_end)
    assert run.state == "success", env.task_states(run)
    assert_warehouse_matches(env)
    assert_platform_matches(env, never_created=discontinued)
    assert_no_429(env)
    first = task_counts(env, run, "load_inventory_warehouse")
    assert first["updated"] > 0 and first["history"] > 0
    # Replaying the window (a backfill over it) changes and publishes nothing.
    run = env.run("usdirect_get_inventory_changes", logical_date=window_end)
    assert run.state == "success"
    assert task_counts(env, run, "load_inventory_warehouse")["updated"] == 0
    assert task_counts(env, run, "publish_inventory_platform")["put_calls"] == 0


def test_resync_maps_only_changed_rows_into_postgres_and_platform(make_env: Callable[..., Env]) -> None:
    """Later feeds build on the last complete mapped feed: only changed rows are mapped, and the
    warehouse and the platform end exactly as with every row mapped."""
    env = make_env("postgres", ["warehouse", "platform"], catalog_size=400)
    first = env.run("usdirect_get_inventory")
    assert first.state == "success", env.task_states(first)
    assert task_counts(env, first, "map_feed")["reused"] == 0
    old = set(truth(env.sandbox))
    for _ in range(2):  # the second re-sync builds on the first run's complete feed as well
        env.sandbox.next_catalog_version(price=0.02, quantity=0.04, new=0.02, removed=0.02)
        run = env.run("usdirect_get_inventory")
        assert run.state == "success", env.task_states(run)
        mapped = task_counts(env, run, "map_feed")
        assert 0 < mapped["reused"] < mapped["skus"]
        # Removed SKUs are archived by the next good feed that still lacks them.
        confirm = env.run("usdirect_get_inventory")
        assert confirm.state == "success", env.task_states(confirm)
        assert_warehouse_matches(env, old - set(truth(env.sandbox)))
        assert_platform_matches(env, old - set(truth(env.sandbox)))
    assert task_counts(env, run, "load_inventory_warehouse")["updated"] > 0
    assert_no_429(env)

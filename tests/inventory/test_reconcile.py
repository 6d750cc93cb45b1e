"""The platform reconciled with what the warehouse decided, through ``dag.test()`` against a sandbox
platform that already holds variants of many kinds (``--stale-platform``): stale quantity, cost,
MSRP/MAP, archived though active, live though discontinued, live though removed from the feed,
and another supplier's. Writes are counted at the sandbox."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from sandbox.platform import OTHER_SUPPLIER_SKUS
from tests.support.inventory import (
    Env,
    assert_no_429,
    inventory,
    mapped_file,
    money,
    ok_count,
    row,
    task_counts,
    truth,
)
from usdirect.targets.warehouse.sql import Warehouse

WRITES = ("PUT /inventory/variants", "POST /inventory/parents")


def _writes(env: Env) -> int:
    calls = env.platform_calls()
    return sum(ok_count(calls, endpoint) for endpoint in WRITES)


def _values(v: dict[str, Any]) -> dict[str, Any]:
    def dec(x: Any) -> Decimal | None:
        return None if x is None else money(str(x))

    return {
        "cost": dec(v.get("cost")),
        "msrp": dec(v.get("msrp")),
        "map": dec(v.get("map")),
        "quantity": v.get("quantity"),
        "archived": bool(v.get("archived")),
    }


def _difference(variant: dict[str, Any] | None, want: dict[str, Any]) -> str | None:
    """How a platform variant differs from the intent (None: it matches). An archived SKU matches
    when the platform lacks it or holds it archived with quantity 0."""
    if want["archived"]:
        if variant is None or (variant.get("archived") and variant.get("quantity") == 0):
            return None
        return "live, should be archived"
    if variant is None:
        return "absent, should be live"
    got = _values(variant)
    if got["archived"]:
        return "archived, should be live"
    wrong = [k for k in ("cost", "msrp", "map", "quantity") if got[k] != want[k]]
    return f"stale {'/'.join(wrong)}" if wrong else None


def _warehouse_intent(env: Env) -> dict[str, dict[str, Any]]:
    return {
        sku: {k: r[k] for k in ("cost", "msrp", "map", "quantity", "archived")}
        for sku, r in inventory(env.wh).items()
        if not r["pending_full_feed"]
    }


def _platform(env: Env) -> dict[str, dict[str, Any]]:
    return {v["sku"]: v for v in env.sandbox.platform("variants")}


def _assert_equal_to(env: Env, intent: dict[str, dict[str, Any]]) -> None:
    platform = _platform(env)
    wrong = {sku: d for sku in intent if (d := _difference(platform.get(sku), intent[sku]))}
    assert intent and wrong == {}, (
        f"{len(wrong)} of {len(intent)} SKUs differ: {dict(list(wrong.items())[:5])}"
    )


@pytest.mark.parametrize("kind", ["postgres", "duckdb"])
def test_first_publish_makes_the_platform_equal_the_warehouse(
    make_env: Callable[..., Env], monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    env = make_env(kind, ["warehouse", "platform"], catalog_size=400, stale_platform=0.4)
    # The account first ran into the warehouse only; SKUs removed from the feed (some of them
    # discontinued, so archived long before) are archived there by the second feed that lacks them.
    monkeypatch.setenv("USDIRECT_TARGETS", "warehouse")
    assert env.run("usdirect_get_inventory").state == "success"
    env.sandbox.next_catalog_version(price=0.0, quantity=0.0, new=0.0, removed=0.08)
    for _ in range(2):
        assert env.run("usdirect_get_inventory").state == "success"
    monkeypatch.delenv("USDIRECT_TARGETS")

    intent = _warehouse_intent(env)
    before = _platform(env)
    others = {sku: before[sku] for sku in OTHER_SUPPLIER_SKUS}
    drift = Counter(d for sku in intent if (d := _difference(before.get(sku), intent[sku])))
    removed = set(intent) - set(truth(env.sandbox))
    assert any(before.get(s) and not before[s]["archived"] for s in removed)  # live though removed
    for expected in ("stale quantity", "stale cost", "stale msrp", "live,", "archived,", "absent,"):
        assert any(k.startswith(expected) for k in drift), (expected, drift)

    # One full run: the first publish of the account reconciles.
    run = env.run("usdirect_get_inventory")
    assert run.state == "success", env.task_states(run)
    _assert_equal_to(env, intent)
    assert {sku: _platform(env)[sku] for sku in OTHER_SUPPLIER_SKUS} == others  # not ours: untouched
    reconciled = task_counts(env, run, "publish_inventory_platform")["reconciled"]
    assert reconciled["our_skus"] == len(intent) and reconciled["read_calls"] >= 1
    assert_no_429(env)

    # A second run, reconciling again (Param), reads the platform and sends nothing.
    writes = _writes(env)
    gets = ok_count(env.platform_calls(), "GET /inventory/variants")
    again = env.run("usdirect_get_inventory", run_conf={"reconcile": True})
    assert again.state == "success" and env.task_states(again)["fetch_feed"] == "success"
    assert _writes(env) == writes
    assert ok_count(env.platform_calls(), "GET /inventory/variants") > gets
    _assert_equal_to(env, intent)


def test_platform_only_account_reconciles_from_the_feed(make_env: Callable[..., Env]) -> None:
    """Without a warehouse target, the feed (and the ledger in the account's warehouse connection)
    say what should be there."""
    env = make_env("duckdb", ["platform"], catalog_size=300, stale_platform=0.5)
    expected = truth(env.sandbox)
    before = _platform(env)
    assert sum(1 for sku in expected if _difference(before.get(sku), expected[sku])) > 50
    run = env.run("usdirect_get_inventory")
    assert run.state == "success", env.task_states(run)
    _assert_equal_to(env, expected)
    writes = _writes(env)
    again = env.run("usdirect_get_inventory", run_conf={"reconcile": True})
    assert again.state == "success" and _writes(env) == writes


def test_reconcile_is_due_on_the_first_publish_and_every_n_days(wh: Warehouse, tmp_path: Path) -> None:
    from usdirect.targets.platform.inventory import adopt_published
    from usdirect.targets.platform.reconcile import RECONCILES, ensure_reconciles, reconcile_due

    p = wh.placeholder
    now = dt.datetime(2026, 12, 1, 5, 0, tzinfo=dt.UTC)
    assert "first publish" in (reconcile_due(wh, "main", None, now) or "")
    adopt_published(wh, "main", "adopt", mapped_file(tmp_path, [row("1")], "v1"))
    assert reconcile_due(wh, "main", None, now) is None  # off by default
    assert "never" in (reconcile_due(wh, "main", 7, now) or "")
    with wh.connect() as conn:
        ensure_reconciles(wh, conn)
        wh.execute(
            conn,
            f"INSERT INTO {wh.table(RECONCILES)} VALUES ('main', 'r', {p}, 1, 1, 0, 1)",
            (now - dt.timedelta(days=3),),
        )
    assert reconcile_due(wh, "main", 7, now) is None
    assert reconcile_due(wh, "main", 7, now + dt.timedelta(days=4)) is not None
    assert "first publish" in (reconcile_due(wh, "other", 7, now) or "")


def test_platform_is_read_the_cheaper_way(
    sandbox_factory: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Listing every variant (pages of 500) when the platform holds little else, SKU queries of 50
    when it holds much more than this account's SKUs; both find the same variants."""
    import pyarrow.parquet as pq

    from tests.support.connections import conn_env_var
    from usdirect.hooks.flxpoint import FlxpointHook
    from usdirect.targets.platform.reconcile import _read_platform

    sb = sandbox_factory(catalog_size=1200, stale_platform=1.0, platform_rate_limit=0)
    conn = sb.connections()["flxpoint_default"] | {"extra": {"rate_limit": 50}}
    monkeypatch.setenv(*conn_env_var("flxpoint_default", conn))
    held = sorted(v["sku"] for v in sb.platform("variants"))
    assert len(held) > 1000  # three pages of 500
    hook = FlxpointHook()

    def read(skus: list[str], name: str) -> tuple[int, str, dict[str, Any]]:
        calls, how = _read_platform(hook, skus, tmp_path / name)
        rows = pq.read_table(tmp_path / name).to_pylist()
        return calls, how, {r["sku"]: r for r in rows if r["sku"] in set(skus)}

    few = held[100:160]  # 60 SKUs: 2 queries beat 3 pages
    calls, how, found = read(few, "few.parquet")
    assert (how, calls, set(found)) == ("skus", 1 + 2, set(few))
    many = held[:1100]  # 22 queries would cost more than 3 pages
    calls, how, listed = read(many, "many.parquet")
    assert (how, calls, set(listed)) == ("list", 3, set(many))
    assert {s: listed[s] for s in few} == found


def test_sku_discontinued_on_first_sight_is_archived_where_the_platform_has_it(
    make_env: Callable[..., Env],
) -> None:
    """After the first publish, a SKU that first appears already discontinued is sent archived: the
    platform may hold it from elsewhere (here: created live by another integration)."""
    from usdirect.hooks.flxpoint import FlxpointHook

    env = make_env("duckdb", ["warehouse", "platform"], catalog_size=300)
    assert env.run("usdirect_get_inventory").state == "success"
    known = set(truth(env.sandbox))
    env.sandbox.next_catalog_version(price=0.0, quantity=0.0, new=0.3, removed=0.0)
    new_discontinued = sorted(
        sku for sku, r in truth(env.sandbox).items() if sku not in known and r["archived"]
    )
    assert 0 < len(new_discontinued) <= 20
    FlxpointHook().create_parents(
        [
            {"sku": sku, "title": "Listed elsewhere", "variants": [{"sku": sku, "cost": 1.0, "quantity": 4}]}
            for sku in new_discontinued
        ]
    )
    run = env.run("usdirect_get_inventory")
    assert run.state == "success", env.task_states(run)
    variants = _platform(env)
    assert all(variants[s]["archived"] and variants[s]["quantity"] == 0 for s in new_discontinued)
    assert task_counts(env, run, "publish_inventory_platform")["archived"] == len(new_discontinued)
    _assert_equal_to(env, _warehouse_intent(env))

"""Hostile feed bodies from the sandbox over real HTTP, through ``usdirect_get_inventory``'s
``dag.test()``: control characters never fail a load nor reach either warehouse or the platform; an
HTML page, a feed in another encoding and a header with a repeated column fail the run with the cause
named in its ``usdirect_runs`` row (no Arrow or DuckDB traceback)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.inventory import Env, inventory

CONTROL = {chr(c) for c in range(32)} - {"\t", "\n", "\r"}


def _clean(text: str | None) -> bool:
    return not CONTROL & set(text or "")


def _failed_runs(env: Env) -> dict[str, str]:
    """task id → message of the failed ``usdirect_runs`` rows."""
    with env.wh.connect() as conn:
        rows = env.wh.fetchall(
            conn, f"SELECT task_id, message FROM {env.wh.table('usdirect_runs')} WHERE outcome <> 'success'"
        )
    return {task: message for task, message in rows}


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_control_characters_load_clean_on_both_warehouses_and_platform(
    make_env: Callable[..., Env], kind: str
) -> None:
    env = make_env(kind, ["warehouse", "platform"], catalog_size=200)
    env.sandbox.set_feed_mode("control_chars")
    truth = env.sandbox.catalog_truth()
    hostile = {f"USD-{r['sku']}" for r in truth["hostile_rows"]}
    assert len(hostile) == 4
    run = env.run("usdirect_get_inventory")
    assert run.state == "success", env.task_states(run)
    titles = {f"USD-{r['sku']}": (r["title"], r["brand"]) for r in truth["rows"]}
    stored = inventory(env.wh)
    assert set(stored) == set(titles)
    for sku, row in stored.items():
        assert (row["title"], row["brand"]) == titles[sku], sku
        assert all(_clean(row[c]) for c in ("sku", "supplier_sku", "title", "brand")), sku
    with env.wh.connect() as conn:
        [(rejected,)] = env.wh.fetchall(conn, f"SELECT count(*) FROM {env.wh.table('usdirect_rejects')}")
    assert rejected == 0  # stripped, not rejected
    parents = {p["sku"]: p for p in env.sandbox.platform("parents")}
    variants = {v["sku"]: v for v in env.sandbox.platform("variants")}
    assert hostile <= set(variants)
    for sku in hostile:
        assert parents[variants[sku]["parentSku"]]["title"] == titles[sku][0]
        assert variants[sku]["title"] == titles[sku][0]
    assert all(_clean(v.get("title")) and _clean(v["sku"]) for v in variants.values())


@pytest.mark.parametrize(
    ("mode", "task", "says", "never"),
    [
        ("html", "fetch_feed", "the Feed URL returned an HTML page", "source column"),
        ("cp1252", "map_feed", "set `encoding: cp1252` in", "UnicodeDecodeError"),
        (
            "duplicate_column",
            "map_feed",
            "lists a column more than once: 'quantity' at columns 9, 18",
            "exists 2",
        ),
    ],
)
def test_unreadable_feeds_fail_with_the_cause_named(
    make_env: Callable[..., Env], mode: str, task: str, says: str, never: str
) -> None:
    env = make_env("duckdb", ["warehouse"], catalog_size=100)
    env.sandbox.set_feed_mode(mode)
    run = env.run("usdirect_get_inventory")
    states = env.task_states(run)
    assert run.state == "failed" and states[task] == "failed", states
    messages = _failed_runs(env)
    assert says in messages[task] and never not in messages[task], messages
    assert "Traceback" not in messages[task]
    with env.wh.connect() as conn:
        exists = env.wh.fetchall(
            conn, "SELECT 1 FROM information_schema.tables WHERE table_name = 'usdirect_inventory'"
        )
    assert not exists or inventory(env.wh) == {}  # nothing was loaded

"""Get Inventory Changes after a pause, on Postgres: a scheduled run 16 days later reads every change
since the targets' watermark, not only its own data interval; a backfill keeps its interval exactly."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

from tests.support.dag_runs import run_as
from tests.support.inventory import Env, assert_platform_matches, assert_warehouse_matches, truth
from usdirect.targets.warehouse.watermarks import read_watermark

DAG = "usdirect_get_inventory_changes"
QUARTER = dt.timedelta(minutes=15)


def _fetch_counts(env: Env, run_id: str) -> tuple[dt.datetime, dt.datetime, dict]:
    p = env.wh.placeholder
    with env.wh.connect() as conn:
        ((start, end, counts),) = env.wh.fetchall(
            conn,
            f"SELECT window_start, window_end, counts FROM {env.wh.table('usdirect_runs')} "
            f"WHERE run_id = {p} AND task_id = 'fetch_changes' AND outcome = 'success'",
            (run_id,),
        )
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC), json.loads(counts)


def test_changes_after_a_16_day_pause_reach_warehouse_and_platform(make_env: Callable[..., Env]) -> None:
    env = make_env("postgres", ["warehouse", "platform"], catalog_size=300)
    assert env.run("usdirect_get_inventory").state == "success"
    discontinued = {sku for sku, r in truth(env.sandbox).items() if r["archived"]}
    t0 = env.sandbox.clock_now()
    first = env.run(DAG, logical_date=t0 + QUARTER)  # manual: the interval [t0, t0+15m)
    assert first.state == "success", env.task_states(first)
    assert read_watermark(env.wh, DAG, ("warehouse", "platform")) == t0 + QUARTER

    env.sandbox.advance_clock(hours=1)
    before = truth(env.sandbox)
    env.sandbox.next_catalog_version(price=0.05, quantity=0.1, new=0.0, removed=0.0)
    changed_early = {sku for sku, row in truth(env.sandbox).items() if row != before[sku]}
    env.sandbox.advance_clock(days=16)  # the DAG is paused meanwhile
    env.sandbox.next_catalog_version(price=0.05, quantity=0.1, new=0.0, removed=0.0)
    latest = env.sandbox.clock_now()
    run = run_as(env.dag(DAG), "scheduled", (latest, latest + QUARTER))
    assert run.state == "success", env.task_states(run)

    start, end, counts = _fetch_counts(env, run.run_id)
    assert (start, end) == (t0 + QUARTER, latest + QUARTER)
    assert counts["gap_hours"] == round((latest - t0 - QUARTER).total_seconds() / 3600, 1)
    assert counts["items"] >= len(changed_early) > 0
    assert_warehouse_matches(env)  # the changes of the first version arrived as well
    assert_platform_matches(env, never_created=discontinued)
    assert read_watermark(env.wh, DAG, ("warehouse", "platform")) == latest + QUARTER

    # A backfill of the window of the first version reads exactly it and moves nothing back.
    old = (t0 + dt.timedelta(minutes=45), t0 + dt.timedelta(minutes=60))
    backfill = run_as(env.dag(DAG), "backfill", old)
    assert backfill.state == "success", env.task_states(backfill)
    start, end, counts = _fetch_counts(env, backfill.run_id)
    assert (start, end) == old and "gap_hours" not in counts
    assert counts["since"] == (old[0] - dt.timedelta(minutes=5)).isoformat()
    assert_warehouse_matches(env)
    assert read_watermark(env.wh, DAG, ("warehouse", "platform")) == latest + QUARTER

"""Asset events of the inventory DAG through ``dag.test()`` against the sandbox: one per product a
run changed, with the warehouse's URI convention, counts and window in ``extra``, no secrets; none
for a 304 or for a feed that changed nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.inventory import Env


def asset_events(run: Any) -> dict[str, dict[str, Any]]:
    """Asset name -> extra of the events the DAG run's tasks emitted (one per product here); a
    table's name is its URI as written (Airflow stores ``duckdb:///f`` as URI ``duckdb:/f``)."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(AssetModel.uri, AssetModel.name, AssetEvent.extra, AssetEvent.source_task_id)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetEvent.source_dag_id == run.dag_id, AssetEvent.source_run_id == run.run_id)
        ).all()
    events: dict[str, dict[str, Any]] = {}
    for uri, name, extra, task_id in rows:
        assert name not in events, f"two events for {name}"
        events[name] = {"uri": uri, "task_id": task_id, **extra}
    return events


def secrets(env: Env) -> list[str]:
    sb = env.sandbox
    return [sb.api_token, sb.reseller_token, sb.platform_token, sb.feed_url.rsplit("/", 1)[-1]]


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_a_changed_feed_emits_one_event_per_product_and_a_304_or_unchanged_feed_none(
    make_env: Callable[..., Env], kind: str
) -> None:
    env = make_env(kind, ["warehouse", "platform"], catalog_size=40)
    run = env.run("usdirect_get_inventory")
    assert run.state == "success", env.task_states(run)
    events = asset_events(run)

    if kind == "duckdb":
        file = env.wh._hook.get_connection("usdirect_warehouse").host
        table = f"duckdb://{file}/main/usdirect_inventory"
    else:
        conn = env.wh._hook.get_connection("usdirect_warehouse")
        table = f"postgres://{conn.host}:{conn.port}/{conn.schema}/{env.wh.schema}/usdirect_inventory"
    platform = "usdirect.main.platform.inventory_variants"
    assert set(events) == {table, f"{table}_history", platform}
    assert events[platform]["uri"] == "x-flxpoint://main/inventory_variants"
    loaded = events[table]
    assert loaded["task_id"] == "load_inventory_warehouse"
    assert loaded["account"] == "main" and loaded["operation"] == "get_inventory"
    assert loaded["changed"] == loaded["counts"]["inserted"] == 40
    assert loaded["window_start"] and loaded["window_end"]
    published = events[platform]["counts"]
    assert (
        events[platform]["changed"] == published["created"] + published["updated"] + published["archived"] > 0
    )
    text = json.dumps(events)
    for secret in secrets(env):
        assert secret and secret not in text

    again = env.run("usdirect_get_inventory")  # the feed is unchanged: a 304 skips the run
    assert env.task_states(again)["fetch_feed"] == "skipped"
    assert asset_events(again) == {}

    with env.wh.connect() as conn:  # forget the validators: the same feed is downloaded again
        env.wh.execute(
            conn, f"UPDATE {env.wh.table('usdirect_feed_state')} SET etag = NULL, last_modified = NULL"
        )
    same = env.run("usdirect_get_inventory")
    assert env.task_states(same)["load_inventory_warehouse"] == "success"
    assert asset_events(same) == {}  # nothing changed: no event

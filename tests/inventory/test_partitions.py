"""Partitioned full feeds: K slices by SKU hash give exactly the tables of one unpartitioned load,
on DuckDB and Postgres, and through the DAG (mapped load and publish tasks)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.inventory import (
    Env,
    assert_no_429,
    assert_platform_matches,
    assert_warehouse_matches,
    history,
    inventory,
    mapped_file,
    row,
    truth,
)
from usdirect.engine.absence import Absence
from usdirect.engine.base import parquet_source
from usdirect.engine.partitions import Partition, partition_count, slice_sql, write_partitions
from usdirect.targets.warehouse import inventory as iw
from usdirect.targets.warehouse.sql import Warehouse

NOW = dt.datetime(2026, 11, 21, 5, 0, tzinfo=dt.UTC)
K = 3


def _load_parts(wh: Warehouse, account: str, feed: Path, run: str, now: dt.datetime, seq: int) -> list[Any]:
    parts = {i: feed.with_name(f"{feed.stem}-{account}-{i}.parquet") for i in range(K)}
    sizes = write_partitions(parquet_source(feed), K, parts)
    assert all(sizes) and sum(sizes) == pq_rows(feed)
    return [
        iw.load_full(wh, account, run, parts[i], now, Absence(seq, after_feeds=2), Partition(i, K))
        for i in range(K)
    ]


def pq_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.read_metadata(path).num_rows


def _comparable(rows: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {sku: {k: v for k, v in r.items() if k not in ("account", "run_id")} for sku, r in rows.items()}


def test_partitioned_loads_equal_one_load(wh: Warehouse, tmp_path: Path) -> None:
    v1 = [row(str(i), quantity=i % 7) for i in range(300)]
    gone = {f"USD-{i}" for i in range(0, 300, 15)}  # 20 SKUs spread over every slice
    v2 = [
        row(str(i), quantity=i % 7, cost="12.25" if i % 10 == 1 else "10.00")
        for i in range(300)
        if f"USD-{i}" not in gone
    ] + [row(f"n{i}") for i in range(12)]
    feeds = [("v1", v1), ("v2", v2), ("v2b", v2)]  # the second v2 confirms the absence: archived
    archived_by_parts = 0
    for seq, (name, rows) in enumerate(feeds, start=1):
        feed = mapped_file(tmp_path, rows, name)
        now = NOW + dt.timedelta(days=seq)
        whole = iw.load_full(wh, "whole", f"r{seq}", feed, now, Absence(seq, after_feeds=2))
        parts = _load_parts(wh, "parts", feed, f"r{seq}", now, seq)
        for field in ("read", "inserted", "updated", "unchanged", "archived", "missing", "history"):
            assert sum(getattr(c, field) for c in parts) == getattr(whole, field), (name, field)
        archived_by_parts += sum(c.archived for c in parts)
    # Every SKU the feed lost is archived exactly once, by the one slice it hashes into.
    assert archived_by_parts == len(gone)
    assert _comparable(inventory(wh, "parts")) == _comparable(inventory(wh, "whole"))
    assert {r["sku"] for r in inventory(wh, "parts").values() if r["archived"]} == gone
    assert _versions(wh, "parts") == _versions(wh, "whole")


def _versions(wh: Warehouse, account: str) -> list[str]:
    """History rows without run ids, in a fixed order (both versions of a first change may share
    valid_from and recorded_at)."""
    return sorted(repr(sorted((k, v) for k, v in h.items() if k != "run_id")) for h in history(wh, account))


def test_slices_agree_between_duckdb_and_postgres(wh: Warehouse) -> None:
    """The warehouse computes a stored SKU's slice in its own dialect; it must be the slice the
    feed's DuckDB engine put that SKU in, or a SKU would be compared with the wrong slice."""
    import duckdb

    skus = [f"SKU-{i}" for i in range(500)] + ["ÄÖ-ü", "a'b", ""]
    with duckdb.connect() as engine_conn:  # its own connection: the module's default one is shared
        engine = {
            s: int(engine_conn.execute(f"SELECT {slice_sql('duckdb', '?', 7)}", [s]).fetchall()[0][0])
            for s in skus
        }
    with wh.connect() as conn:
        stored = {
            s: int(wh.fetchall(conn, f"SELECT {slice_sql(wh.dialect, wh.placeholder, 7)}", (s,))[0][0])
            for s in skus
        }
    assert stored == engine
    assert set(engine.values()) == set(range(7))


def test_partition_count() -> None:
    assert partition_count(5_000, None) == 1
    assert partition_count(2_000, 2_000) == 1
    assert partition_count(5_000, 2_000) == 3
    assert partition_count(10_000_000, 2_000_000) == 5


# --------------------------------------------------------------------------------------------- DAG


def _partition_rows(env: Env, rows: int | None) -> None:
    path = env.tmp / "usdirect.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["operations"]["get_inventory"]["partition_rows"] = rows
    path.write_text(yaml.safe_dump(raw))


def _rows(env: Env, run: Any, task_id: str) -> list[dict[str, Any]]:
    p = env.wh.placeholder
    with env.wh.connect() as conn:
        found = env.wh.fetchall(
            conn,
            f"SELECT counts FROM {env.wh.table('usdirect_runs')} WHERE run_id = {p} AND task_id = {p}",
            (run.run_id, task_id),
        )
    return [json.loads(r[0]) for r in found]


def _mapped_tis(run: Any, task_id: str) -> list[tuple[int, str]]:
    return sorted((ti.map_index, str(ti.state)) for ti in run.get_task_instances() if ti.task_id == task_id)


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_dag_loads_and_publishes_partitions_as_mapped_tasks(make_env: Callable[..., Env], kind: str) -> None:
    """3 slices of a 1,500-SKU feed into the warehouse and the platform: one mapped task instance
    per slice, the same end state as the sandbox's truth, re-syncs that reuse the last complete
    mapped feed, and SKUs that leave the feed archived exactly once."""
    env = make_env(kind, ["warehouse", "platform"], catalog_size=1500)
    _partition_rows(env, 500)
    first = env.run("usdirect_get_inventory")
    assert first.state == "success", env.task_states(first)
    for task_id in ("load_inventory_warehouse", "publish_inventory_platform"):
        assert _mapped_tis(first, task_id) == [(0, "success"), (1, "success"), (2, "success")]
    loads = _rows(env, first, "load_inventory_warehouse")
    assert sorted(c["partition"] for c in loads) == ["1 of 3", "2 of 3", "3 of 3"]
    assert sum(c["inserted"] for c in loads) == len(truth(env.sandbox))
    assert_warehouse_matches(env)
    assert_platform_matches(env)

    old = set(truth(env.sandbox))
    before = inventory(env.wh)
    env.sandbox.next_catalog_version(price=0.02, quantity=0.04, new=0.02, removed=0.02)
    resync = env.run("usdirect_get_inventory")
    assert resync.state == "success", env.task_states(resync)
    mapped = _rows(env, resync, "map_feed")[-1]
    assert 0 < mapped["reused"] < mapped["skus"] and len(mapped["partition_skus"]) == 3
    gone = old - set(truth(env.sandbox))
    gone_live = {sku for sku in gone if not before[sku]["archived"]}
    on_platform = gone_live & {v["sku"] for v in env.sandbox.platform("variants")}
    assert gone_live and on_platform
    assert sum(c["missing"] for c in _rows(env, resync, "load_inventory_warehouse")) == len(gone_live)
    assert sum(c["missing"] for c in _rows(env, resync, "publish_inventory_platform")) == len(on_platform)
    confirm = env.run("usdirect_get_inventory")
    assert confirm.state == "success", env.task_states(confirm)
    assert env.task_states(confirm)["fetch_feed"] == "success"  # missing SKUs: no 304
    assert sum(c["archived"] for c in _rows(env, confirm, "load_inventory_warehouse")) == len(gone_live)
    assert sum(c["archived"] for c in _rows(env, confirm, "publish_inventory_platform")) == len(on_platform)
    assert_warehouse_matches(env, gone)
    assert_platform_matches(env, on_platform)  # the others were never created there
    assert_no_429(env)

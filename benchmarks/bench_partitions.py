"""Partitioned Get Inventory benchmark: wall time and peak RSS per task, as the DAG runs them.

For each size and warehouse (DuckDB file, Postgres database), the initial load and a re-sync (about
1% changed, 0.5% new, 0.5% removed, building on the initial run's complete mapped feed) run as the
DAG's tasks do, each in a fresh process that measures itself: ``map_feed`` (transform, then the
split into K = ceil(SKUs / partition_rows) slice files) and one ``load_inventory_warehouse`` per
slice. Up to ``equal_max`` SKUs the same feeds are also loaded unpartitioned into another account of
the same warehouse, and both accounts' tables are compared (``rows_differing`` 0 = identical).

Goals (issue 13): peak RSS < 1 GB per task at 10,000,000 SKUs; DuckDB initial < 60 s at 10M.
Run alone with: .venv/bin/python -m benchmarks.bench_partitions [SIZE ...]
"""

from __future__ import annotations

import datetime as dt
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_inventory import (
    REPO,
    TARGET_PEAK_RSS_MB,
    TEMPLATE,
    _in_fresh_process,
    _settle,
    _use_connection,
    _warehouse,
    _write_feeds,
)

PARTS = "parts"
WHOLE = "whole"
TARGET_DUCKDB_INITIAL_S_AT_10M = 60.0


def _rss_mb() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def _map(feed: Path, folder: Path, name: str, base: Path | None, partition_rows: int) -> dict[str, Any]:
    """``map_feed``: transform (reusing ``base``), then write the slice files."""
    from usdirect.engine.partitions import partition_count, write_partitions
    from usdirect.engine.reuse import MappedFeed, feed_source
    from usdirect.engine.transform import transform_feed
    from usdirect.mapping import load_template

    template = load_template(TEMPLATE)
    mapped = folder / f"mapped-{name}.parquet"
    dropped = folder / f"dropped-{name}.parquet"
    started = time.perf_counter()
    result = transform_feed(feed, template, mapped, folder / f"rejects-{name}.parquet", dropped, base)
    whole = MappedFeed(mapped, base, dropped, result.base_id) if result.reused and base else mapped
    count = partition_count(result.skus, partition_rows)
    parts = {i: folder / f"part-{name}-{i}-of-{count}.parquet" for i in range(count)}
    write_partitions(feed_source(whole), count, parts)
    return {
        "whole": whole,
        "parts": [str(p) for p in parts.values()],
        "seconds": round(time.perf_counter() - started, 3),
        "peak_rss_mb": _rss_mb(),
        "reused": result.reused,
        "skus": result.skus,
    }


def _load(conn: dict[str, Any], account: str, feed: Any, run: str, index: int | None, count: int) -> dict:
    """One ``load_inventory_warehouse`` task (``index`` None: the whole feed)."""
    _use_connection("bench_wh", conn)
    from usdirect.engine.absence import archive_at_once
    from usdirect.engine.partitions import Partition
    from usdirect.targets.warehouse.inventory import load_full
    from usdirect.targets.warehouse.sql import Warehouse

    wh = Warehouse.from_conn_id("bench_wh")
    part = Partition(index, count) if index is not None else None
    started = time.perf_counter()
    counts = load_full(wh, account, run, feed, dt.datetime.now(dt.UTC), archive_at_once(), part)
    return {"seconds": round(time.perf_counter() - started, 3), "peak_rss_mb": _rss_mb(), **counts.as_dict()}


def _differing(conn: dict[str, Any]) -> int:
    """Rows in one account's inventory and not the other's (values, archived flag and row hash)."""
    _use_connection("bench_wh", conn)
    from usdirect.domain.inventory import MAPPED_COLUMNS
    from usdirect.targets.warehouse.sql import Warehouse

    wh = Warehouse.from_conn_id("bench_wh")
    cols = ", ".join((*MAPPED_COLUMNS, "row_hash", "missing_feed_seq"))
    t = wh.table("usdirect_inventory")
    one = f"SELECT {cols} FROM {t} WHERE account = '{PARTS}'"
    other = f"SELECT {cols} FROM {t} WHERE account = '{WHOLE}'"
    with wh.connect() as c:
        return int(
            wh.fetchall(
                c,
                f"SELECT (SELECT count(*) FROM ({one} EXCEPT {other}) a) "
                f"+ (SELECT count(*) FROM ({other} EXCEPT {one}) b)",
            )[0][0]
        )


def run(sizes: list[int], partition_rows: int = 400_000, equal_max: int = 1_000_000) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="bench-partitions-") as tmp:
            folder = Path(tmp)
            _in_fresh_process(_write_feeds, folder, size)
            for kind in ("duckdb", "postgres"):
                with _warehouse(kind, folder) as conn:
                    for phase, feed in (("initial", "v0"), ("re-sync", "v1")):
                        name = f"{kind}-{feed}"
                        base = folder / f"mapped-{kind}-v0.parquet" if feed == "v1" else None
                        mapped = _in_fresh_process(
                            _map, folder / f"{feed}.csv", folder, name, base, partition_rows
                        )
                        count = len(mapped["parts"])
                        tasks = [{"task": "map_feed", **{k: mapped[k] for k in ("seconds", "peak_rss_mb")}}]
                        for i, part in enumerate(mapped["parts"]):
                            _settle(conn)
                            fig = _in_fresh_process(_load, conn, PARTS, Path(part), phase, i, count)
                            tasks.append({"task": f"load {i + 1}/{count}", **fig})
                        wall = sum(t["seconds"] for t in tasks)
                        peak = max(t["peak_rss_mb"] for t in tasks)
                        record: dict[str, Any] = {
                            "name": f"partitioned {phase} → {kind}",
                            "rows": size,
                            "partitions": count,
                            "seconds": round(wall, 3),
                            "max_task_peak_rss_mb": peak,
                            "reused": mapped["reused"],
                            "tasks": json.dumps(
                                [(t["task"], t["seconds"], t["peak_rss_mb"]) for t in tasks],
                                separators=(",", ":"),
                            ),
                        }
                        goal_ok = peak < TARGET_PEAK_RSS_MB
                        if kind == "duckdb" and phase == "initial" and size >= 1_000_000:
                            limit = TARGET_DUCKDB_INITIAL_S_AT_10M * size / 10_000_000
                            record["target_s"] = limit
                            goal_ok = goal_ok and wall < limit
                        if size <= equal_max:
                            _settle(conn)
                            _in_fresh_process(_load, conn, WHOLE, mapped["whole"], phase, None, 1)
                            record["rows_differing"] = _in_fresh_process(_differing, conn)
                            goal_ok = goal_ok and record["rows_differing"] == 0
                        record["target_met"] = goal_ok
                        results.append(record)
    return {
        "results": results,
        "notes": [
            f"partition_rows {partition_rows:,}: K = ceil(SKUs / partition_rows) slices by SKU hash",
            "each task (map_feed = transform + split; one load per slice) in a fresh process;"
            " seconds = their sum (the DAG runs the loads one after another on a DuckDB file, and"
            " Postgres loads of one account take turns); tasks = (task, seconds, peak RSS MB)",
            "re-sync: builds on the initial run's complete mapped feed (reused = rows not mapped again);"
            " SKUs it lacks are archived at once here (the DAG waits archive_after_missing_feeds)",
            f"rows_differing (up to {equal_max:,} SKUs): the same feeds loaded unpartitioned into another"
            " account of the same warehouse, tables compared (0 = identical)",
            "goals: peak RSS < 1 GB per task; DuckDB initial < 60 s at 10M (scaled linearly for sizes"
            " from 1M)",
        ],
    }


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    print(json.dumps(run([int(a) for a in sys.argv[1:]] or [100_000], partition_rows=40_000), indent=2))

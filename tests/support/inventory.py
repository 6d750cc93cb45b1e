"""Builders, expectations and the DAG-run environment shared by the inventory tests."""

from __future__ import annotations

import datetime as dt
import decimal
import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from sandbox.runner import SandboxInfo
from tests.support.paths import REPO
from usdirect.domain.held_changes import HELD_CHANGE
from usdirect.domain.inventory import conform
from usdirect.engine.dedupe import ROW, dedupe_and_hash
from usdirect.targets.warehouse.sql import Warehouse


@dataclass
class Env:
    sandbox: SandboxInfo
    wh: Warehouse
    tmp: Path

    def dag(self, dag_id: str) -> Any:
        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(dag_folder=str(REPO / "dags"))
        assert bag.import_errors == {}
        return bag.get_dag(dag_id)

    def run(self, dag_id: str, **kwargs: Any) -> Any:
        return self.dag(dag_id).test(**kwargs)

    def task_states(self, run: Any) -> dict[str, str]:
        return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}

    def platform_calls(self) -> dict[str, dict[str, int]]:
        return self.sandbox.stats("flxpoint")["requests"]


T0 = dt.datetime(2026, 11, 20, 8, 0, tzinfo=dt.UTC)


def row(sku: str, **values: Any) -> dict[str, Any]:
    """A mapped inventory row with plausible defaults; money given as strings."""
    base: dict[str, Any] = {
        "sku": f"USD-{sku}",
        "supplier_sku": sku,
        "title": f"Item {sku}",
        "brand": "Acme",
        "cost": "10.00",
        "msrp": "20.00",
        "map": None,
        "quantity": 5,
        "status": "active",
        "weight_lb": "1.5",
        "source_updated_at": T0,
    }
    base.update(values)
    for money in ("cost", "msrp", "map", "weight_lb"):
        if base[money] is not None:
            base[money] = decimal.Decimal(base[money])
    return base


def mapped_file(tmp_path: Path, rows: list[dict[str, Any]], name: str = "mapped") -> Path:
    """Run the real dedupe/hash step over ``rows`` and return the mapped Parquet it writes."""
    table = conform(pa.Table.from_pylist(rows))
    table = table.append_column(ROW, pa.array(range(1, len(rows) + 1), pa.int64()))
    parts = tmp_path / f"{name}.parts.parquet"
    pq.write_table(table, parts)
    out = tmp_path / f"{name}.parquet"
    dedupe_and_hash(parts, out)
    return out


def inventory(wh: Warehouse, account: str = "main") -> dict[str, dict[str, Any]]:
    """The stored inventory rows of an account keyed by SKU."""
    with wh.connect() as conn:
        cur = conn.cursor()
        cur.execute(
            f"SELECT * FROM {wh.table('usdirect_inventory')} WHERE account = '{account}' ORDER BY sku"
        )
        names = [d[0] for d in cur.description]
        return {r[names.index("sku")]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}


def history(wh: Warehouse, account: str = "main") -> list[dict[str, Any]]:
    with wh.connect() as conn:
        cur = conn.cursor()
        cur.execute(
            f"SELECT sku, cost, quantity, status, valid_from, valid_to, run_id "
            f"FROM {wh.table('usdirect_inventory_history')} WHERE account = '{account}' "
            "ORDER BY sku, valid_from, recorded_at"
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


CAP = 100  # the feed's capped quantities ('100+')


def money(text: str | None) -> Decimal | None:
    return None if text in (None, "") else Decimal(text.replace("$", "").replace(",", ""))


def truth(sb: SandboxInfo) -> dict[str, dict[str, Any]]:
    """Expected mapped values per platform SKU, from the sandbox's ground truth."""
    data = sb.catalog_truth()
    out = {}
    for r in data["rows"]:
        out[f"USD-{r['sku']}"] = {
            "cost": money(r["cost"]),
            "msrp": money(r["msrp"]),
            "map": money(r["map"]),
            "quantity": min(int(r["quantity"]), CAP),
            "status": r["status"],
            "archived": r["status"] == "discontinued",
        }
    return out


def assert_warehouse_matches(env: Env, gone: set[str] = frozenset()) -> dict[str, dict[str, Any]]:
    expected = truth(env.sandbox)
    stored = inventory(env.wh)
    for sku, want in expected.items():
        got = {k: stored[sku][k] for k in want}
        assert got == want, sku
    for sku in gone:
        assert stored[sku]["archived"] is True, sku
    assert set(stored) == set(expected) | set(gone)
    return expected


def assert_platform_matches(
    env: Env, gone: set[str] = frozenset(), never_created: set[str] = frozenset()
) -> None:
    """``never_created``: SKUs discontinued when the full feed first listed them (nothing to sell;
    a later change from /v1/inventory cannot create them either: the next full feed does)."""
    expected = truth(env.sandbox)
    variants = {v["sku"]: v for v in env.sandbox.platform("variants")}
    for sku, want in expected.items():
        if sku not in variants:
            assert want["archived"] or sku in never_created, sku
            continue
        v = variants[sku]
        got = {
            "cost": money(str(v["cost"])) if v["cost"] is not None else None,
            "msrp": money(str(v["msrp"])) if v.get("msrp") is not None else None,
            "map": money(str(v["map"])) if v.get("map") is not None else None,
            "quantity": v["quantity"],
        }
        assert got == {k: want[k] for k in ("cost", "msrp", "map", "quantity")}, sku
        assert bool(v.get("archived")) is want["archived"], sku
    for sku in gone:
        assert variants[sku]["archived"] is True and variants[sku]["quantity"] == 0, sku


def assert_no_429(env: Env) -> None:
    calls = env.platform_calls()
    assert not any("429" in statuses for statuses in calls.values()), calls


def ok_count(calls: dict[str, dict[str, int]], endpoint: str) -> int:
    return sum(n for status, n in calls.get(endpoint, {}).items() if status == "200")


def task_counts(env: Env, run: Any, task_id: str) -> dict[str, Any]:
    p = env.wh.placeholder
    with env.wh.connect() as conn:
        rows = env.wh.fetchall(
            conn,
            f"SELECT counts FROM {env.wh.table('usdirect_runs')} WHERE run_id = {p} AND task_id = {p}",
            (run.run_id, task_id),
        )
    return json.loads(rows[-1][0])


def held_changes(wh: Warehouse) -> dict[str, dict[str, Any]]:
    """The price guard's held changes keyed by SKU (the latest of each)."""
    with wh.connect() as conn:
        rows = wh.fetchall(
            conn,
            f"SELECT {', '.join(HELD_CHANGE.names)} FROM {wh.table(HELD_CHANGE.stored_as)} "
            "ORDER BY first_held_at",
        )
    return {r[1]: dict(zip(HELD_CHANGE.names, r, strict=True)) for r in rows}

"""The after-load checks of the inventory loads, on a real DuckDB file and a real Postgres database:
each fails with its name, table, observed value and fix when violated, and then nothing of the
load is committed; normal loads (with SKUs missing but not archived yet) pass."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.inventory import Env, history, inventory, mapped_file, row
from tests.support.paths import MAPPINGS
from tests.support.settings_file import write_settings
from usdirect.engine.absence import Absence
from usdirect.targets.warehouse import inventory as iw
from usdirect.targets.warehouse.checks import QualityCheckFailed
from usdirect.targets.warehouse.sql import Warehouse

NOW1 = dt.datetime(2026, 11, 21, 5, 0, tzinfo=dt.UTC)
NOW2 = NOW1 + dt.timedelta(days=1)
V1 = [row("1"), row("2"), row("3"), row("4")]


def _load_v1(wh: Warehouse, tmp_path: Path) -> dict[str, dict[str, Any]]:
    iw.load_full(wh, "main", "r1", mapped_file(tmp_path, V1, "v1"), NOW1)
    return inventory(wh)


def _failed(exc: pytest.ExceptionInfo[QualityCheckFailed]) -> set[str]:
    return {f.check.name for f in exc.value.failures}


def _sql(wh: Warehouse, statement: str) -> None:
    with wh.connect() as conn:
        wh.execute(conn, statement.format(inv=wh.table(iw.INVENTORY)))


def test_normal_loads_pass_with_missing_skus_pending_ones_and_partitions(
    wh: Warehouse, tmp_path: Path
) -> None:
    _load_v1(wh, tmp_path)
    # SKU 4 is missing (kept active until a second feed lacks it), 2 is discontinued by the feed.
    v2 = [row("2", archived=True), row("1", quantity=0), row("3"), row("5")]  # (keys of the first row)
    c2 = iw.load_full(wh, "main", "r2", mapped_file(tmp_path, v2, "v2"), NOW2, Absence(2, after_feeds=2))
    assert (c2.inserted, c2.updated, c2.missing, c2.archived) == (1, 2, 1, 0)
    changes = [row("3", quantity=7, source_updated_at=NOW1), row("9", cost="1.00", title=None)]
    c3 = iw.load_changes(wh, "main", "c1", mapped_file(tmp_path, changes, "c1"), NOW2 + dt.timedelta(hours=1))
    assert (c3.updated, c3.inserted) == (1, 1)
    stored = inventory(wh)
    assert stored["USD-4"]["archived"] is False and stored["USD-2"]["archived"] is True
    assert stored["USD-9"]["pending_full_feed"] is True


@pytest.mark.parametrize("first_load", [True, False], ids=["initial", "delta"])
def test_negative_values_from_the_feed_fail_the_load_and_write_nothing(
    wh: Warehouse, tmp_path: Path, first_load: bool
) -> None:
    iw.load_full(wh, "other", "r0", mapped_file(tmp_path, [row("1")], "other"), NOW1)
    if not first_load:
        _load_v1(wh, tmp_path)
    before, hist_before = inventory(wh), history(wh)
    bad = [row("1", cost="11.00"), row("2", quantity=-3), row("3", msrp="-0.01", map="-2.00"), row("4")]
    with pytest.raises(QualityCheckFailed) as exc:
        iw.load_full(wh, "main", "r2", mapped_file(tmp_path, bad, "bad"), NOW2)
    assert _failed(exc) == {"quantity_min", "msrp_min", "map_min"}
    message = str(exc.value)
    assert "usdirect_inventory" in message and "account 'main'" in message
    assert "quantity_min: observed -3, expected >= 0. Fix: " in message
    assert "map_min: observed -2.00, expected >= 0" in message
    assert "rolled back" in message
    assert inventory(wh) == before and history(wh) == hist_before  # SKU 1's new cost is not kept
    assert len(inventory(wh, "other")) == 1  # the other account's rows do not take part


def test_a_negative_change_fails_the_changes_load(wh: Warehouse, tmp_path: Path) -> None:
    before = _load_v1(wh, tmp_path)
    changes = [row("1", quantity=9, source_updated_at=NOW1), row("2", cost="-5.00", source_updated_at=NOW1)]
    with pytest.raises(QualityCheckFailed) as exc:
        iw.load_changes(wh, "main", "c1", mapped_file(tmp_path, changes, "c1"), NOW2)
    assert _failed(exc) == {"cost_min"}
    assert inventory(wh) == before and history(wh) == []


def test_a_row_without_sku_fails_the_next_load(wh: Warehouse, tmp_path: Path) -> None:
    before = _load_v1(wh, tmp_path)
    # A table altered by hand: the NOT NULL constraint dropped, an (archived) row without SKU
    # inserted. (Were it active, a full feed would stage it as absent, and the staging table's own
    # NOT NULL would stop the Postgres load before the checks.)
    _sql(wh, "ALTER TABLE {inv} ALTER COLUMN sku DROP NOT NULL")
    _sql(
        wh,
        "INSERT INTO {inv} (account, sku, supplier_sku, archived, row_hash, first_seen_at, "
        "last_changed_at, run_id) VALUES ('main', NULL, 'x', TRUE, 0, now(), now(), 'by hand')",
    )
    with pytest.raises(QualityCheckFailed) as exc:
        iw.load_full(wh, "main", "r2", mapped_file(tmp_path, [*V1[:3], row("4", quantity=1)], "v2"), NOW2)
    assert "sku_null_check" in _failed(exc)
    assert "sku_null_check: observed 1, expected = 0" in str(exc.value)
    assert inventory(wh)["USD-4"] == before["USD-4"]


def _plant(monkeypatch: pytest.MonkeyPatch, planted: str) -> None:
    """Run ``planted`` (direct SQL) in the load's own transaction, right after its writes."""
    apply = iw._Delta.apply

    def apply_then_plant(self: iw._Delta, run_id: str, now: dt.datetime) -> int:
        history_rows = apply(self, run_id, now)
        stamp = f"CAST('{now.isoformat()}' AS TIMESTAMPTZ)"
        self.wh.execute(self.conn, planted.format(inv=self.n["inv"], now=stamp))
        return history_rows

    monkeypatch.setattr(iw._Delta, "apply", apply_then_plant)


V2 = [row("1", cost="12.00"), row("2"), row("3"), row("4"), row("5")]


def test_a_duplicate_sku_fails_the_load(
    wh: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _load_v1(wh, tmp_path)
    # Another writer inserts the SKU this load inserts, inside the load's transaction.
    _plant(monkeypatch, "INSERT INTO {inv} SELECT * FROM {inv} WHERE account = 'main' AND sku = 'USD-5'")
    if wh.dialect == "postgres":
        # The unique index on (account, sku) refuses the copy: the check cannot fire there.
        with pytest.raises(Exception, match="usdirect_inventory_account_sku_uq"):
            iw.load_full(wh, "main", "r2", mapped_file(tmp_path, V2, "v2"), NOW2)
        assert inventory(wh) == before
        return
    with pytest.raises(QualityCheckFailed) as exc:
        iw.load_full(wh, "main", "r2", mapped_file(tmp_path, V2, "v2"), NOW2)
    # DuckDB keeps no index (see ensure_inventory_tables); the copy is also one more row stamped.
    assert _failed(exc) == {"sku_unique_check", "rows_inserted", "rows_changed", "active_rows"}
    assert "sku_unique_check: observed 1, expected = 0" in str(exc.value)
    assert inventory(wh) == before
    monkeypatch.undo()
    # A hand-made copy of a known SKU (between loads) shows as one more active SKU than offered.
    with wh.connect() as conn:
        inv = wh.table(iw.INVENTORY)
        wh.execute(conn, f"INSERT INTO {inv} SELECT * FROM {inv} WHERE account = 'main' AND sku = 'USD-1'")
    with pytest.raises(QualityCheckFailed) as exc:
        iw.load_full(wh, "main", "r3", mapped_file(tmp_path, V2, "v3"), NOW2)
    assert _failed(exc) == {"active_rows"}
    assert "active_rows: observed 6, expected = 5" in str(exc.value)


@pytest.mark.parametrize(
    ("planted", "failing"),
    [
        # a write the counts do not know of: an untouched row stamped as changed by this load
        ("UPDATE {inv} SET last_changed_at = {now}, run_id = 'r2' WHERE sku = 'USD-3'", {"rows_changed"}),
        # an offered SKU archived behind the load's back
        ("UPDATE {inv} SET archived = TRUE WHERE sku = 'USD-3'", {"active_rows"}),
        # an inserted row lost
        ("DELETE FROM {inv} WHERE sku = 'USD-5'", {"rows_inserted", "rows_changed", "active_rows"}),
    ],
    ids=["stamped", "archived", "lost"],
)
def test_the_table_must_hold_what_the_load_counted(
    wh: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, planted: str, failing: set[str]
) -> None:
    """Violations planted by direct SQL in the load's own transaction, after its writes."""
    before = _load_v1(wh, tmp_path)
    _plant(monkeypatch, planted)
    with pytest.raises(QualityCheckFailed) as exc:
        iw.load_full(wh, "main", "r2", mapped_file(tmp_path, V2, "v2"), NOW2)
    assert _failed(exc) == failing
    assert "Fix: the table does not hold what the load counted" in str(exc.value)
    assert inventory(wh) == before


def test_a_failed_check_fails_the_dag_task_by_name_at_once(
    make_env: Callable[..., Env], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through Airflow: a template without the shipped negative-quantity rule lets the feed's
    ``-3`` reach the load, which fails without retries, naming the check; the table keeps its rows."""
    env = make_env("duckdb", ["warehouse"], catalog_size=300, dirty=True)
    assert env.run("usdirect_get_inventory").state == "success"  # the shipped template rejects -3
    stored = inventory(env.wh)
    mappings = env.tmp / "mappings"
    mappings.mkdir()
    shutil.copy(MAPPINGS / "value_maps.yaml", mappings)
    template = (MAPPINGS / "inventory.yaml").read_text()
    rule = (
        "  - name: negative quantity\n"
        "    reject_if: {field: quantity, lt: 0}\n"
        '    reason: "quantity: negative quantity"\n'
    )
    assert rule in template
    (mappings / "inventory.yaml").write_text(template.replace(rule, ""))
    settings = write_settings(
        env.tmp, ["warehouse"], retries=2, templates={"get_inventory": mappings / "inventory.yaml"}
    )
    monkeypatch.setenv("USDIRECT_CONFIG", str(settings))
    env.sandbox.next_catalog_version(price=0.05, quantity=0.1, new=0.0, removed=0.0)
    run = env.run("usdirect_get_inventory")
    states = env.task_states(run)
    assert run.state == "failed" and states["load_inventory_warehouse"] == "failed", states
    with env.wh.connect() as conn:
        (tries, outcome, message), *_ = env.wh.fetchall(
            conn,
            f"SELECT count(*) OVER (), outcome, message FROM {env.wh.table('usdirect_runs')} "
            f"WHERE run_id = '{run.run_id}' AND task_id = 'load_inventory_warehouse'",
        )
    assert (tries, outcome) == (1, "failed")  # no retry: the data stays what it is
    assert "QualityCheckFailed" in message and "quantity_min: observed -3, expected >= 0" in message
    assert inventory(env.wh) == stored

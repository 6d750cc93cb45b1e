"""The warehouse delta on a real DuckDB file and a real Postgres database: values, not just counts."""

from __future__ import annotations

import datetime as dt
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest

from tests.support.inventory import T0, history, inventory, mapped_file, row
from usdirect.targets.warehouse import inventory as iw
from usdirect.targets.warehouse.sql import Warehouse

NOW1 = dt.datetime(2026, 11, 21, 5, 0, tzinfo=dt.UTC)
NOW2 = NOW1 + dt.timedelta(days=1)
NOW3 = NOW2 + dt.timedelta(days=1)
T1 = T0 + dt.timedelta(hours=5)


def test_full_feed_lifecycle(wh: Warehouse, tmp_path: Path) -> None:
    v1 = [row("1"), row("2"), row("3", map="15.00"), row("4", quantity=100)]
    counts = iw.load_full(wh, "main", "r1", mapped_file(tmp_path, v1, "v1"), NOW1)
    assert (counts.read, counts.inserted, counts.history) == (4, 4, 0)
    stored = inventory(wh)
    assert stored["USD-3"]["map"] == Decimal("15.00")
    assert stored["USD-4"]["quantity"] == 100
    assert not any(r["archived"] for r in stored.values())

    # The same feed again: nothing is touched, not even the bookkeeping columns.
    again = iw.load_full(wh, "main", "r1b", mapped_file(tmp_path, v1, "v1b"), NOW2)
    assert again.as_dict() == {**iw.LoadCounts(read=4, unchanged=4).as_dict()}
    assert inventory(wh) == stored

    # v2: 1 cost change (history), 2 title-only change (no history), 3 gone, 4 same, 5 new.
    v2 = [
        row("1", cost="11.50", source_updated_at=T1),
        row("2", title="Renamed", source_updated_at=T1),
        row("4", quantity=100),
        row("5", status="backorder", quantity=0),
    ]
    c2 = iw.load_full(wh, "main", "r2", mapped_file(tmp_path, v2, "v2"), NOW2)
    assert (c2.inserted, c2.updated, c2.unchanged, c2.archived, c2.revived, c2.history) == (1, 2, 1, 1, 0, 2)
    s2 = inventory(wh)
    assert s2["USD-1"]["cost"] == Decimal("11.50")
    assert s2["USD-2"]["title"] == "Renamed"
    assert s2["USD-3"]["archived"] is True and s2["USD-3"]["archived_at"] is not None
    assert s2["USD-3"]["map"] == Decimal("15.00")  # archived rows keep their last values
    assert s2["USD-4"]["run_id"] == "r1"  # untouched
    assert s2["USD-5"]["status"] == "backorder"
    assert {r["sku"] for r in history(wh)} == {"USD-1"}  # history holds changes, not first versions
    h = [r for r in history(wh) if r["sku"] == "USD-1"]
    assert [(r["cost"], r["valid_to"] is None) for r in h] == [
        (Decimal("10.00"), False),
        (Decimal("11.50"), True),
    ]
    assert h[0]["valid_to"] == h[1]["valid_from"]

    # v3: 3 comes back.
    c3 = iw.load_full(wh, "main", "r3", mapped_file(tmp_path, [*v2, row("3", map="15.00")], "v3"), NOW3)
    assert (c3.revived, c3.inserted, c3.updated, c3.archived, c3.history) == (1, 0, 0, 0, 0)
    s3 = inventory(wh)
    assert s3["USD-3"]["archived"] is False and s3["USD-3"]["archived_at"] is None


def test_changes_apply_newer_only_and_never_archive(wh: Warehouse, tmp_path: Path) -> None:
    iw.load_full(wh, "main", "r1", mapped_file(tmp_path, [row("1"), row("2"), row("3")], "v1"), NOW1)
    partial = {"title": None, "brand": None, "weight_lb": None}
    changes = [
        row("1", quantity=9, status="active", source_updated_at=T1, **partial),
        row("2", quantity=0, source_updated_at=T0 - dt.timedelta(hours=1), **partial),  # stale
        row("9", cost="3.00", source_updated_at=T1, **partial),  # unknown yet
    ]
    counts = iw.load_changes(wh, "main", "c1", mapped_file(tmp_path, changes, "c1"), NOW2)
    assert (counts.read, counts.updated, counts.inserted, counts.stale, counts.archived) == (3, 1, 1, 1, 0)
    stored = inventory(wh)
    assert stored["USD-1"]["quantity"] == 9
    assert stored["USD-1"]["title"] == "Item 1"  # fields a change does not carry are kept
    assert stored["USD-2"]["quantity"] == 5
    assert stored["USD-9"]["cost"] == Decimal("3.00") and stored["USD-9"]["title"] is None
    assert not stored["USD-3"]["archived"]

    # Replaying the same window changes nothing; the next full feed with the same values sees
    # SKU 1 as unchanged because the stored hash was recomputed from the merged row.
    again = iw.load_changes(wh, "main", "c1b", mapped_file(tmp_path, changes, "c1b"), NOW3)
    assert (again.updated, again.inserted, again.history) == (0, 0, 0)
    full = [
        row("1", quantity=9, source_updated_at=T1),
        row("2"),
        row("3"),
        row("9", cost="3.00", source_updated_at=T1),
    ]
    c = iw.load_full(wh, "main", "r2", mapped_file(tmp_path, full, "v2"), NOW3)
    assert (c.unchanged, c.updated) == (3, 1)  # only SKU 9 gains its title


def test_accounts_are_isolated(wh: Warehouse, tmp_path: Path) -> None:
    iw.load_full(wh, "main", "r1", mapped_file(tmp_path, [row("1"), row("2")], "a"), NOW1)
    counts = iw.load_full(wh, "other", "r1", mapped_file(tmp_path, [row("1")], "b"), NOW1)
    assert counts.inserted == 1 and counts.archived == 0
    assert not any(r["archived"] for r in inventory(wh, "main").values())
    assert len(inventory(wh, "main")) == 2


def test_failed_load_leaves_tables_untouched(
    wh: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    iw.load_full(wh, "main", "r1", mapped_file(tmp_path, [row("1"), row("2")], "v1"), NOW1)
    before = inventory(wh)

    def explode(self: object, run_id: str, now: dt.datetime) -> int:
        raise RuntimeError("killed mid-load")

    monkeypatch.setattr(iw._Delta, "apply", explode)
    with pytest.raises(RuntimeError, match="killed"):
        iw.load_full(wh, "main", "r2", mapped_file(tmp_path, [row("1", cost="1.00")], "v2"), NOW2)
    assert inventory(wh) == before


def test_feed_state_round_trip(wh: Warehouse) -> None:
    assert iw.get_feed_state(wh, "main") is None
    state = iw.FeedState(
        etag='"abc"', last_modified="Fri, 20 Nov 2026 08:00:00 GMT", sku_count=4, run_id="r1", loaded_at=NOW1
    )
    iw.save_feed_state(wh, "main", state)
    iw.save_feed_state(
        wh, "main", iw.FeedState(etag='"def"', last_modified=None, sku_count=5, run_id="r2", loaded_at=NOW2)
    )
    got = iw.get_feed_state(wh, "main")
    assert got is not None and (got.etag, got.sku_count, got.run_id) == ('"def"', 5, "r2")


def test_adopted_catalog_publishes_only_differences(wh: Warehouse, tmp_path: Path) -> None:
    from usdirect.targets.platform.inventory import adopt_published, plan_publish, published

    writable = frozenset({"cost", "msrp", "map", "quantity", "archived", "title"})
    v1 = mapped_file(tmp_path, [row("1"), row("2"), row("3")], "v1")
    assert adopt_published(wh, "main", "adopt", v1) == 3
    assert sorted(published(wh, "main").column("sku").to_pylist()) == ["USD-1", "USD-2", "USD-3"]
    assert plan_publish(wh, "main", v1, tmp_path / "p0", writable, full=True).calls == 0
    v2 = mapped_file(tmp_path, [row("1", cost="9.99"), row("2"), row("4")], "v2")
    plan = plan_publish(wh, "main", v2, tmp_path / "p1", writable, full=True)
    assert (plan.updated, plan.archived, plan.created, plan.unchanged) == (1, 1, 1, 1)
    assert plan.calls == 2  # one PUT (update + archive), one POST


@pytest.mark.parametrize("wh", ["postgres"], indirect=True)
def test_loads_of_one_account_take_turns(
    wh: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A changes run that starts while the first full load is still writing waits for it, so its
    delta sees the rows that load inserts (without the account lock it would try to insert them too)."""
    iw.load_full(wh, "main", "r0", mapped_file(tmp_path, [row("0")], "v0"), NOW1)
    applying = threading.Event()
    apply = iw._Delta.apply

    def slow_apply(self: iw._Delta, run_id: str, now: dt.datetime) -> int:
        applying.set()
        if run_id == "full":
            time.sleep(1.0)
        return apply(self, run_id, now)

    monkeypatch.setattr(iw._Delta, "apply", slow_apply)
    full = mapped_file(tmp_path, [row("0"), row("1", quantity=5)], "full")
    change = mapped_file(tmp_path, [row("1", quantity=9, source_updated_at=T1)], "change")
    with ThreadPoolExecutor(max_workers=1) as pool:
        loading = pool.submit(iw.load_full, wh, "main", "full", full, NOW2)
        assert applying.wait(10)
        changed = iw.load_changes(wh, "main", "change", change, NOW3)
        assert loading.result().inserted == 1
    assert (changed.inserted, changed.updated) == (0, 1)
    assert inventory(wh)["USD-1"]["quantity"] == 9


@pytest.mark.parametrize("wh", ["postgres"], indirect=True)
def test_postgres_first_load_leaves_statistics_for_the_next_loads_lookups(
    wh: Warehouse, tmp_path: Path
) -> None:
    """The next load finds its rows through the (account, sku) index only if the planner knows the
    table is large; autovacuum may not have run yet, so the first load analyses those columns."""
    iw.load_full(wh, "main", "r1", mapped_file(tmp_path, [row("1"), row("2")], "v1"), NOW1)
    with wh.connect() as conn:
        analysed = wh.fetchall(
            conn,
            "SELECT attname FROM pg_stats WHERE schemaname = %s AND tablename = 'usdirect_inventory'",
            (wh.schema,),
        )
    assert {"account", "sku"} <= {name for (name,) in analysed}

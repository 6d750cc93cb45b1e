"""A SKU the full feed lacks is archived only after several good feeds, in the warehouse (DuckDB and
Postgres) and in the platform ledger alike: one short feed (a body cut at a row boundary, which no
framing gives away) archives nothing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from tests.support.inventory import Env, history, inventory, mapped_file, row, task_counts
from usdirect.engine.absence import Absence
from usdirect.targets.platform.inventory import adopt_published, plan_publish
from usdirect.targets.warehouse import inventory as iw
from usdirect.targets.warehouse.sql import Warehouse

NOW = dt.datetime(2026, 11, 21, 5, 0, tzinfo=dt.UTC)
WRITABLE = frozenset({"cost", "msrp", "map", "quantity", "archived", "title"})


def _feeds() -> tuple[list[dict], list[dict]]:
    full = [row(str(i)) for i in range(10)]
    return full, full[:8]  # the short one: the last two rows cut off


def test_one_short_feed_archives_nothing_in_the_warehouse(wh: Warehouse, tmp_path: Path) -> None:
    full, short = _feeds()
    feeds = {"full": mapped_file(tmp_path, full, "full"), "short": mapped_file(tmp_path, short, "short")}

    def load(run: str, feed: str, seq: int, hours: float = 0) -> iw.LoadCounts:
        now = NOW + dt.timedelta(hours=hours)
        return iw.load_full(wh, "main", run, feeds[feed], now, Absence(seq, after_feeds=2))

    load("r1", "full", 1)
    short1 = load("r2", "short", 2, hours=24)
    assert (short1.archived, short1.missing, short1.updated) == (0, 2, 0)
    stored = inventory(wh)
    for sku in ("USD-8", "USD-9"):
        assert stored[sku]["archived"] is False and stored[sku]["missing_feed_seq"] == 2
        assert stored[sku]["missing_since"] == NOW + dt.timedelta(hours=24)
    # A retry of the same feed (same sequence number) is still its first absence.
    assert load("r2", "short", 2, hours=25).archived == 0
    # The whole feed again: the SKUs are unmarked, nothing was archived, no history was written.
    back = load("r3", "full", 3, hours=48)
    assert (back.archived, back.revived, back.missing, back.updated) == (0, 0, 0, 2)
    assert all(r["missing_feed_seq"] is None and not r["archived"] for r in inventory(wh).values())
    assert history(wh) == []
    # Absent from two good feeds in a row: archived by the second.
    assert load("r4", "short", 4, hours=72).archived == 0
    gone = load("r5", "short", 5, hours=96)
    assert (gone.archived, gone.missing) == (2, 0)
    stored = inventory(wh)
    assert stored["USD-9"]["archived"] is True and stored["USD-9"]["missing_feed_seq"] == 4
    assert not stored["USD-7"]["archived"]


def test_absence_can_also_require_time(wh: Warehouse, tmp_path: Path) -> None:
    """Hourly feeds with ``archive_after_missing_hours: 24``: two feeds are not enough, a day is."""
    full, short = _feeds()
    feeds = {"full": mapped_file(tmp_path, full, "full"), "short": mapped_file(tmp_path, short, "short")}

    def load(seq: int, feed: str, hours: float) -> iw.LoadCounts:
        rule = Absence(seq, after_feeds=2, after_hours=24)
        return iw.load_full(wh, "main", f"r{seq}", feeds[feed], NOW + dt.timedelta(hours=hours), rule)

    load(1, "full", 0)
    assert load(2, "short", 1).missing == 2
    assert load(3, "short", 2).missing == 2  # absent from 2 feeds, but only for an hour
    assert load(4, "short", 24.5).missing == 2  # 23.5 hours since the first feed that lacked them
    assert load(5, "short", 25).archived == 2


def test_ledger_applies_the_same_rule(wh: Warehouse, tmp_path: Path) -> None:
    """The platform publish archives the same SKUs in the same feed as the warehouse."""
    full, short = _feeds()
    v_full, v_short = mapped_file(tmp_path, full, "full"), mapped_file(tmp_path, short, "short")
    adopt_published(wh, "main", "adopt", v_full)

    def plan(feed: Path, seq: int, name: str) -> tuple[int, int, int]:
        p = plan_publish(
            wh, "main", feed, tmp_path / name, WRITABLE, full=True, absence=Absence(seq), now=NOW
        )
        return p.archived, p.missing, p.calls

    assert plan(v_short, 2, "p2") == (0, 2, 0)
    assert plan(v_short, 2, "p2b") == (0, 2, 0)  # the same feed retried
    assert plan(v_full, 3, "p3") == (0, 0, 0)  # back: unmarked, nothing to send
    assert plan(v_short, 4, "p4") == (0, 2, 0)
    assert plan(v_short, 5, "p5") == (2, 0, 1)  # one PUT archives both
    # Without a rule (a person vouched for the feed with allow_shrink) a single feed archives.
    adopt_published(wh, "main", "adopt2", v_full)
    assert plan_publish(wh, "main", v_short, tmp_path / "p6", WRITABLE, full=True).archived == 2


def test_without_the_archived_switch_nothing_counts_as_missing(wh: Warehouse, tmp_path: Path) -> None:
    """Otherwise the feed's validators would never be kept and every run would download in full."""
    full, short = _feeds()
    adopt_published(wh, "main", "adopt", mapped_file(tmp_path, full, "full"))
    plan = plan_publish(
        wh,
        "main",
        mapped_file(tmp_path, short, "short"),
        tmp_path / "p",
        WRITABLE - {"archived"},
        True,
        Absence(2),
    )
    assert (plan.archived, plan.missing, plan.calls) == (0, 0, 0)


def test_a_short_feed_through_the_dag_archives_nothing(make_env: Callable[..., Env]) -> None:
    """The case a body cut at a row boundary produces (here: the sandbox serving 90% of the rows,
    inside the shrink guard), on Postgres and the platform."""
    env = make_env("postgres", ["warehouse", "platform"], catalog_size=300)
    assert env.run("usdirect_get_inventory").state == "success"
    live = {sku for sku, r in inventory(env.wh).items() if not r["archived"]}
    platform_live = {v["sku"] for v in env.sandbox.platform("variants") if not v["archived"]}

    env.sandbox.set_feed_mode("short", share=0.9)
    short = env.run("usdirect_get_inventory")
    assert short.state == "success", env.task_states(short)
    missing = task_counts(env, short, "load_inventory_warehouse")["missing"]
    assert missing > 0 and task_counts(env, short, "load_inventory_warehouse")["archived"] == 0
    assert {sku for sku, r in inventory(env.wh).items() if not r["archived"]} == live
    assert {v["sku"] for v in env.sandbox.platform("variants") if not v["archived"]} == platform_live
    assert task_counts(env, short, "publish_inventory_platform")["put_calls"] == 0

    env.sandbox.set_feed_mode("normal")
    whole = env.run("usdirect_get_inventory")  # downloaded again: no validators were kept
    assert whole.state == "success" and env.task_states(whole)["fetch_feed"] == "success"
    assert all(r["missing_feed_seq"] is None for r in inventory(env.wh).values())
    assert {v["sku"] for v in env.sandbox.platform("variants") if not v["archived"]} == platform_live
    after = env.run("usdirect_get_inventory")  # nothing missing any more: validators kept, so a 304
    assert after.state == "success" and env.task_states(after)["fetch_feed"] == "skipped"


def test_tables_of_an_earlier_release_gain_the_new_columns(wh: Warehouse, tmp_path: Path) -> None:
    """An existing deployment upgrades in place: its tables get the columns on the next run."""
    from usdirect.targets.platform.inventory import LEDGER

    p = wh.placeholder
    with wh.connect() as conn:
        wh.execute(
            conn,
            f"CREATE TABLE {wh.table(iw.INVENTORY)} (account TEXT NOT NULL, {iw._mapped_ddl()}, "
            "archived_at TIMESTAMPTZ, row_hash BIGINT NOT NULL, first_seen_at TIMESTAMPTZ NOT NULL, "
            "last_changed_at TIMESTAMPTZ NOT NULL, run_id TEXT NOT NULL)",
        )
        wh.execute(
            conn,
            f"CREATE TABLE {wh.table(iw.FEED_STATE)} (account TEXT NOT NULL, feed TEXT NOT NULL, etag TEXT, "
            "last_modified TEXT, sku_count BIGINT NOT NULL, run_id TEXT NOT NULL, "
            "loaded_at TIMESTAMPTZ NOT NULL)",
        )
        wh.execute(
            conn,
            f"CREATE TABLE {wh.table(LEDGER)} (account TEXT NOT NULL, sku TEXT NOT NULL, cost DECIMAL(12,2), "
            "msrp DECIMAL(12,2), map DECIMAL(12,2), quantity BIGINT, archived BOOLEAN NOT NULL, "
            "source_updated_at TIMESTAMPTZ, run_id TEXT NOT NULL, published_at TIMESTAMPTZ NOT NULL)",
        )
        for table, index in ((iw.INVENTORY, "account_sku_uq"), (LEDGER, "uq"), (iw.FEED_STATE, "uq")):
            keys = "account, feed" if table == iw.FEED_STATE else "account, sku"
            wh.execute(conn, f"CREATE UNIQUE INDEX {table}_{index} ON {wh.table(table)} ({keys})")
        wh.execute(
            conn,
            f"INSERT INTO {wh.table(iw.FEED_STATE)} VALUES ('main', 'inventory', NULL, NULL, 10, 'r0', {p})",
            (NOW,),
        )
    full, short = _feeds()
    v_full, v_short = mapped_file(tmp_path, full, "full"), mapped_file(tmp_path, short, "short")
    assert iw.get_feed_state(wh, "main").feed_seq == 0  # type: ignore[union-attr]
    iw.load_full(wh, "main", "r1", v_full, NOW, Absence(1))
    adopt_published(wh, "main", "adopt", v_full)
    assert iw.load_full(wh, "main", "r2", v_short, NOW, Absence(2)).missing == 2
    assert plan_publish(wh, "main", v_short, tmp_path / "p", WRITABLE, True, Absence(2), NOW).missing == 2
    assert inventory(wh)["USD-9"]["pending_full_feed"] is False

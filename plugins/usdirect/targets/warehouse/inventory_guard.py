"""The price anomaly guard inside a warehouse load: the last good prices are the live rows'.

Called by ``usdirect.targets.warehouse.inventory`` with its delta (engine, connection, staged
tables) after the changed SKUs are known and before they are staged; the held changes are written
in the load's transaction. Only the changed SKUs (and the held ones) are compared: a re-sync of
ten million rows pays for its delta.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from usdirect.domain.held_changes import PriceRule
from usdirect.domain.inventory import sql_type
from usdirect.engine.base import sql_literal
from usdirect.engine.partitions import Partition
from usdirect.engine.price_guard import GUARD, HOLD, PRICES, decide, held_count, new_sku_filter
from usdirect.targets.warehouse.held_changes import ENGINE_HELD, read_held, write_decisions

_CAND = "_usd_guard_cand"
_REF = "_usd_guard_ref"
_KEYS = "_usd_guard_keys"


def guard_full(
    delta: Any,
    rule: PriceRule,
    run_id: str,
    now: dt.datetime,
    source: str,
    changed: str,
    partition: Partition | None,
) -> int:
    """Decide on a full feed's ``changed`` SKUs (a relation with ``sku``) and the held ones it lists;
    returns how many are held. ``source``: the feed, which ``_usd_feed`` then lists without the
    held new SKUs."""
    read_held(delta.wh, delta.conn, delta.engine, delta.account, run_id, partition)
    delta.engine.execute(
        f"CREATE OR REPLACE TEMP TABLE {_CAND} AS SELECT f.sku, f.cost, f.msrp, f.map FROM _usd_feed f "
        f"SEMI JOIN (SELECT sku FROM {changed} UNION SELECT sku FROM {ENGINE_HELD}) k ON k.sku = f.sku"
    )
    _live_prices(delta)
    held = _decide(delta, rule, run_id, now, f"SELECT * FROM {_REF}")
    _without_held_new(delta, source)
    return held


def guard_first_load(
    delta: Any, rule: PriceRule, run_id: str, now: dt.datetime, source: str, partition: Partition | None
) -> int:
    """A first load has no last good values: only new-SKU rules apply."""
    read_held(delta.wh, delta.conn, delta.engine, delta.account, run_id, partition)
    delta.engine.execute(
        f"CREATE OR REPLACE TEMP TABLE {_CAND} AS SELECT f.sku, f.cost, f.msrp, f.map FROM _usd_feed f "
        f"WHERE {new_sku_filter(rule)} OR f.sku IN (SELECT sku FROM {ENGINE_HELD})"
    )
    held = _decide(delta, rule, run_id, now, f"SELECT * FROM {_CAND} WHERE FALSE")
    _without_held_new(delta, source)
    return held


def _without_held_new(delta: Any, source: str) -> None:
    """``_usd_feed`` without the new SKUs held whole: to the load (and its checks) they are not in
    the feed yet. Left as it is when there are none, which costs nothing."""
    new = f"SELECT sku FROM {GUARD} WHERE decision = '{HOLD}' AND NOT known"
    if delta.scalar(f"SELECT count(*) FROM ({new})"):
        delta.engine.execute(
            f"CREATE OR REPLACE TEMP VIEW _usd_feed AS SELECT f.* FROM {source} f "
            f"ANTI JOIN ({new}) g ON g.sku = f.sku"
        )


def guard_changes(delta: Any, rule: PriceRule, run_id: str, now: dt.datetime, merged: str) -> int:
    """Decide on the changes path's ``merged`` rows against the stored rows (``_usd_current``)."""
    read_held(delta.wh, delta.conn, delta.engine, delta.account, run_id)
    delta.engine.execute(f"CREATE OR REPLACE TEMP TABLE {_CAND} AS SELECT sku, cost, msrp, map FROM {merged}")
    return _decide(delta, rule, run_id, now, "SELECT sku, cost, msrp, map FROM _usd_current")


def _decide(delta: Any, rule: PriceRule, run_id: str, now: dt.datetime, reference: str) -> int:
    decide(delta.engine, rule, f"SELECT * FROM {_CAND}", reference, ENGINE_HELD, run_id)
    write_decisions(delta.wh, delta.conn, delta.engine, delta.account, run_id, now)
    return held_count(delta.engine)


def _live_prices(delta: Any) -> None:
    """``_REF``: the stored prices of the candidate SKUs (Postgres: their keys sent, one query back)."""
    inv, account = delta.n["inv"], sql_literal(delta.account)
    if delta.local:
        delta.engine.execute(
            f"CREATE OR REPLACE TEMP TABLE {_REF} AS SELECT t.sku, t.cost, t.msrp, t.map FROM {inv} t "
            f"SEMI JOIN {_CAND} c ON c.sku = t.sku WHERE t.account = {account}"
        )
        return
    delta._to_warehouse(_KEYS, "sku TEXT PRIMARY KEY", f"SELECT sku FROM {_CAND}")
    raw = delta.wh.query_arrow(
        delta.conn,
        f"SELECT t.sku, t.cost, t.msrp, t.map FROM {inv} t JOIN {_KEYS} k ON k.sku = t.sku "
        f"WHERE t.account = {account}",
    )
    delta.engine.register("_usd_guard_raw", raw)
    money = sql_type("cost")
    delta.engine.execute(
        f"CREATE OR REPLACE TEMP TABLE {_REF} AS SELECT CAST(sku AS TEXT) AS sku, "
        + ", ".join(f"CAST({c} AS {money}) AS {c}" for c in PRICES)
        + " FROM _usd_guard_raw"
    )
    delta.engine.unregister("_usd_guard_raw")

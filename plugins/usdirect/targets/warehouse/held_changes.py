"""``usdirect_held_changes``: the price changes the guard holds back, and how each one ended.

Kept in the account's warehouse connection (also for a platform-only account, like the publish
ledger). Written in the transaction of the step that decided: a warehouse load's, so a failed load
holds nothing; a publish plan's, before anything is sent. One open row per SKU at most; resolved
rows stay as the record of what was held and why.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from usdirect.domain.held_changes import HELD_CHANGE, Resolution
from usdirect.engine.base import sql_literal
from usdirect.engine.partitions import Partition, and_in
from usdirect.engine.price_guard import ACCEPT, CLEAR, CONFIRM, GUARD, HOLD, PRICES, WRITES
from usdirect.targets.warehouse.sql import Warehouse, quote_ident

HELD = HELD_CHANGE.stored_as
ENGINE_HELD = "_usd_held"
_DECIDED = "_usd_guard_w"
_OPEN_INDEX = "CREATE INDEX IF NOT EXISTS {name} ON {t} (account, sku) WHERE resolved_at IS NULL"
_HOW = {ACCEPT: Resolution.ACCEPTED, CONFIRM: Resolution.CONFIRMED, CLEAR: Resolution.CLEARED}


def ensure_held_table(wh: Warehouse, conn: Any) -> None:
    wh.execute(conn, HELD_CHANGE.create_sql(wh.table(HELD)))
    if wh.dialect == "postgres":
        wh.execute(conn, _OPEN_INDEX.format(name=quote_ident(f"{HELD}_open"), t=wh.table(HELD)))


def read_held(
    wh: Warehouse, conn: Any, engine: Any, account: str, run_id: str, partition: Partition | None = None
) -> None:
    """Make ``ENGINE_HELD`` available to the engine: the account's open held changes and those this
    run resolved (of one partition's SKUs when given)."""
    ensure_held_table(wh, conn)
    cols = ("sku", *(f"new_{p}" for p in PRICES), "times_seen", "run_id", "resolved_how")
    query = (
        f"SELECT {', '.join(cols)} FROM {wh.table(HELD)} WHERE account = {sql_literal(account)} "
        f"AND (resolved_at IS NULL OR resolved_run_id = {sql_literal(run_id)})"
        + and_in(partition, wh.dialect)
    )
    local = wh.dialect == "duckdb" and engine is conn
    if local:
        source = f"({query})"
    else:
        raw = wh.query_arrow(conn, query)
        engine.register("_usd_held_raw", raw)
        casts = ", ".join(f"CAST({c} AS {HELD_CHANGE.field(c).type.sql}) AS {c}" for c in cols)
        source = f"(SELECT {casts} FROM _usd_held_raw)"
    # An open row wins over one this run resolved (there is at most one of each per SKU).
    engine.execute(
        f"CREATE OR REPLACE TEMP TABLE {ENGINE_HELD} AS SELECT * FROM {source} "
        "QUALIFY row_number() OVER (PARTITION BY sku ORDER BY resolved_how IS NULL DESC) = 1"
    )
    if not local:
        engine.unregister("_usd_held_raw")


def write_decisions(
    wh: Warehouse, conn: Any, engine: Any, account: str, run_id: str, now: dt.datetime
) -> None:
    """Record the engine's ``GUARD`` decisions: open, update or resolve held changes."""
    columns = "sku, decision, reason, fields, was_held, seen, " + ", ".join(f"{p}, old_{p}" for p in PRICES)
    select = f"SELECT {columns} FROM {GUARD} WHERE decision IN ({', '.join(repr(d) for d in WRITES)})"
    if wh.dialect == "duckdb" and engine is conn:
        source = f"({select})"
    else:
        money = HELD_CHANGE.field("new_cost").type.sql
        ddl = (
            "sku TEXT, decision TEXT, reason TEXT, fields TEXT, was_held BOOLEAN, seen BIGINT, "
            + ", ".join(f"{p} {money}, old_{p} {money}" for p in PRICES)
        )
        wh.execute(conn, f"DROP TABLE IF EXISTS {_DECIDED}")
        wh.execute(conn, f"CREATE TEMP TABLE {_DECIDED} ({ddl})")
        wh.load_arrow(conn, _DECIDED, engine.sql(select).to_arrow_table())
        source = _DECIDED
    p = wh.placeholder
    how = "CASE g.decision " + " ".join(f"WHEN '{d}' THEN '{r}'" for d, r in _HOW.items()) + " END"
    resolved = f"CASE WHEN g.decision = '{HOLD}' THEN NULL ELSE {p} END"
    # A cleared change keeps the values it held; the others take this run's.
    values = ", ".join(
        f"new_{c} = CASE WHEN g.decision = '{CLEAR}' THEN h.new_{c} ELSE g.{c} END, "
        f"old_{c} = CASE WHEN g.decision = '{CLEAR}' THEN h.old_{c} ELSE g.old_{c} END"
        for c in PRICES
    )
    wh.execute(
        conn,
        f"UPDATE {wh.table(HELD)} AS h SET {values}, "
        f"reason = coalesce(g.reason, h.reason), fields = coalesce(g.fields, h.fields), "
        f"times_seen = CASE WHEN g.decision = '{CLEAR}' THEN h.times_seen ELSE g.seen END, "
        f"last_seen_at = {p}, run_id = {p}, resolved_at = {resolved}, resolved_how = {how}, "
        f"resolved_run_id = CASE WHEN g.decision = '{HOLD}' THEN NULL ELSE {p} END "
        f"FROM {source} g WHERE h.account = {p} AND h.sku = g.sku AND h.resolved_at IS NULL AND g.was_held",
        (now, run_id, now, run_id, account),
    )
    names = ", ".join(HELD_CHANGE.names)
    wh.execute(
        conn,
        f"INSERT INTO {wh.table(HELD)} ({names}) SELECT {p}, g.sku, g.fields, g.reason, "
        + ", ".join(f"g.old_{c}" for c in PRICES)
        + ", "
        + ", ".join(f"g.{c}" for c in PRICES)
        + f", {p}, {p}, g.seen, {p}, {resolved}, {how}, "
        f"CASE WHEN g.decision = '{HOLD}' THEN NULL ELSE {p} END "
        f"FROM {source} g WHERE NOT g.was_held AND g.decision <> '{CLEAR}'",
        (account, now, now, run_id, now, run_id),
    )


def open_held(wh: Warehouse, account: str, run_id: str, limit: int = 10) -> tuple[int, list[dict[str, Any]]]:
    """How many SKUs run ``run_id`` left held, and the ``limit`` most striking (largest relative cost
    change, SKUs without a last good value first)."""
    p = wh.placeholder
    cols = (
        "sku",
        "reason",
        "old_cost",
        "new_cost",
        "old_msrp",
        "new_msrp",
        "old_map",
        "new_map",
        "times_seen",
    )
    with wh.connect() as conn:
        ensure_held_table(wh, conn)
        where = f"FROM {wh.table(HELD)} WHERE account = {p} AND run_id = {p} AND resolved_at IS NULL"
        ((count,),) = wh.fetchall(conn, f"SELECT count(*) {where}", (account, run_id))
        rows = wh.fetchall(
            conn,
            f"SELECT {', '.join(cols)} {where} ORDER BY "
            "coalesce(abs(new_cost - old_cost) / nullif(old_cost, 0), 1e9) DESC, sku "
            f"LIMIT {int(limit)}",
            (account, run_id),
        )
    return int(count), [dict(zip(cols, r, strict=True)) for r in rows]

"""Reconcile the platform with what should be there: read what it holds, then send what differs.

The publish trusts its ledger (what the platform last acknowledged). A platform that already
holds variants — the first publish of an account, edits made by hand, another integration —
differs from that ledger in ways the ledger cannot see: stale quantities and prices, live
variants that should be archived, archived ones that should be live. A reconcile reads the
platform's variants of this account's SKUs (``GET /inventory/variants``, paged, at the hook's
2 requests/second) and rewrites the ledger with what the platform really holds; the ordinary
plan then sends exactly the differences, and a second reconcile sends nothing.

"This account's SKUs" are the ones the feed, the ledger or (when the account has a warehouse
target) ``usdirect_inventory`` know. Platform variants of other SKUs — another supplier's, or
ones this integration never listed — are left alone.

Reading costs ``min(total platform pages of 500, ceil(our SKUs / 50))`` calls: the whole list
when the platform holds little else, SKU queries 50 at a time when it holds much more.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from usdirect.engine.base import open_engine, query_batches, sql_literal
from usdirect.engine.partitions import Partition, and_in
from usdirect.engine.reuse import MappedFeed, feed_source
from usdirect.targets.platform.inventory import LEDGER, ensure_ledger
from usdirect.targets.warehouse.inventory import INVENTORY, ensure_inventory_tables
from usdirect.targets.warehouse.sql import Warehouse

RECONCILES = "usdirect_platform_reconciles"
PAGE = 500
SKUS_PER_QUERY = 50
# Ledger rows a reconcile adds for SKUs the warehouse archived while they were absent from the
# feed: a first-missing feed far in the past, so the ``Absence`` rule finds them due at once.
_ARCHIVED_BY_WAREHOUSE_SEQ = -(2**40)
_TYPES = {
    "sku": "VARCHAR",
    "cost": "DECIMAL(12,2)",
    "msrp": "DECIMAL(12,2)",
    "map": "DECIMAL(12,2)",
    "quantity": "BIGINT",
    "archived": "BOOLEAN",
    "source_updated_at": "TIMESTAMPTZ",
    "missing_feed_seq": "BIGINT",
    "missing_since": "TIMESTAMPTZ",
}
_LEDGER_READ = "sku, cost, msrp, map, quantity, archived, source_updated_at, missing_feed_seq, missing_since"
_VARIANT_SCHEMA = pa.schema(
    [
        ("sku", pa.string()),
        ("cost", pa.float64()),
        ("msrp", pa.float64()),
        ("map", pa.float64()),
        ("quantity", pa.int64()),
        ("archived", pa.bool_()),
    ]
)


class VariantReader(Protocol):
    """The one FlxpointHook call a reconcile needs."""

    def variant_page(
        self, page: int, page_size: int = PAGE, skus: list[str] | None = None
    ) -> tuple[list[dict[str, Any]], int]: ...


@dataclass
class ReconcileCounts:
    """What a reconcile found: ``read_calls`` GETs, ``on_platform`` of ``our_skus`` held there,
    ``ledger_corrected`` SKUs whose ledger row did not match the platform (or was missing/extra)."""

    our_skus: int = 0
    read_calls: int = 0
    on_platform: int = 0
    ledger_corrected: int = 0
    strategy: str = "list"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def ensure_reconciles(wh: Warehouse, conn: Any) -> None:
    wh.execute(
        conn,
        f"""CREATE TABLE IF NOT EXISTS {wh.table(RECONCILES)} (
    account TEXT NOT NULL,
    run_id TEXT NOT NULL,
    reconciled_at TIMESTAMPTZ NOT NULL,
    our_skus BIGINT NOT NULL,
    on_platform BIGINT NOT NULL,
    ledger_corrected BIGINT NOT NULL,
    read_calls BIGINT NOT NULL
)""",
    )


def reconcile_due(wh: Warehouse, account: str, every_days: int | None, now: dt.datetime) -> str | None:
    """Why this run must reconcile, or None: the account's first publish (an empty ledger), or the
    last reconcile is ``every_days`` old (the ``reconcile_every_days`` setting)."""
    p = wh.placeholder
    with wh.connect() as conn:
        ensure_ledger(wh, conn)
        ensure_reconciles(wh, conn)
        if not wh.fetchall(conn, f"SELECT 1 FROM {wh.table(LEDGER)} WHERE account = {p} LIMIT 1", (account,)):
            return "first publish of this account: the platform may already hold its variants"
        if every_days is None:
            return None
        last = wh.fetchall(
            conn, f"SELECT max(reconciled_at) FROM {wh.table(RECONCILES)} WHERE account = {p}", (account,)
        )[0][0]
    if last is None or now - last >= dt.timedelta(days=every_days):
        return f"reconcile_every_days is {every_days} and the last reconcile was {last or 'never'}"
    return None


def reconcile_ledger(
    client: VariantReader,
    wh: Warehouse,
    account: str,
    run_id: str,
    mapped: Path | MappedFeed,
    workdir: Path,
    intent: Warehouse | None = None,
    partition: Partition | None = None,
) -> ReconcileCounts:
    """Read the platform's variants of this account's SKUs and make the ledger say what it holds.

    ``mapped`` is the full feed; ``intent`` the warehouse whose ``usdirect_inventory`` holds what
    was decided about SKUs the feed no longer lists (None for a platform-only account).
    ``partition``: ``mapped`` is that slice of the feed; only that slice of the ledger and of the
    warehouse's decisions is read and replaced.
    """
    now = dt.datetime.now(dt.UTC)
    workdir.mkdir(parents=True, exist_ok=True)
    engine = open_engine()
    try:
        with wh.connect() as conn:
            ensure_ledger(wh, conn)
            ensure_reconciles(wh, conn)
            query = (
                f"SELECT {_LEDGER_READ} FROM {wh.table(LEDGER)} WHERE account = {sql_literal(account)}"
                + and_in(partition, wh.dialect)
            )
            _pull(wh, conn, engine, "_usd_ledger", query)
        engine.execute(
            "CREATE TEMP VIEW _usd_pub AS SELECT sku, archived, cost, msrp, map, quantity, source_updated_at "
            f"FROM {feed_source(mapped)}"
        )
        _intent_table(engine, intent, account, partition)
        engine.execute(
            "CREATE TEMP TABLE _usd_ours AS SELECT sku FROM _usd_pub UNION SELECT sku FROM _usd_ledger "
            "UNION SELECT sku FROM _usd_intent"
        )
        skus = [r[0] for r in engine.execute("SELECT sku FROM _usd_ours ORDER BY sku").fetchall()]
        counts = ReconcileCounts(our_skus=len(skus))
        variants = workdir / "platform-variants.parquet"
        counts.read_calls, counts.strategy = _read_platform(client, skus, variants)
        counts.on_platform, counts.ledger_corrected = _rebuild(engine, variants)
        _replace_ledger(wh, engine, account, run_id, now, counts, partition)
    finally:
        engine.close()
    return counts


def _intent_table(engine: Any, intent: Warehouse | None, account: str, partition: Partition | None) -> None:
    """``_usd_intent``: the warehouse's decision per SKU (pending SKUs excluded: never published)."""
    cols = "sku, archived, missing_feed_seq, missing_since"
    if intent is None:
        engine.execute(
            "CREATE TEMP TABLE _usd_intent (sku VARCHAR, archived BOOLEAN, missing_feed_seq BIGINT, "
            "missing_since TIMESTAMPTZ)"
        )
        return
    query = (
        f"SELECT {cols} FROM {intent.table(INVENTORY)} WHERE account = {sql_literal(account)} "
        "AND NOT coalesce(pending_full_feed, FALSE)" + and_in(partition, intent.dialect)
    )
    with intent.connect() as conn:
        ensure_inventory_tables(intent, conn)
        _pull(intent, conn, engine, "_usd_intent", query)


def _pull(wh: Warehouse, conn: Any, engine: Any, name: str, query: str) -> None:
    """Copy a warehouse query into a table of the side engine, with the columns' types."""
    raw = conn.sql(query).to_arrow_table() if wh.dialect == "duckdb" else wh.query_arrow(conn, query)
    engine.register("_usd_pull", raw)
    casts = ", ".join(f"CAST({c} AS {_TYPES[c]}) AS {c}" for c in raw.column_names)
    engine.execute(f"CREATE TEMP TABLE {name} AS SELECT {casts} FROM _usd_pull")
    engine.unregister("_usd_pull")


def _read_platform(client: VariantReader, skus: list[str], out: Path) -> tuple[int, str]:
    """Write the platform's variants (ours and possibly others) to ``out``; returns (calls, how)."""
    with pq.ParquetWriter(out, _VARIANT_SCHEMA) as writer:
        writer.write_table(_VARIANT_SCHEMA.empty_table())
        if not skus:
            return 0, "none"
        first, total = client.variant_page(1, PAGE)
        if total <= math.ceil(len(skus) / SKUS_PER_QUERY):
            writer.write_table(_variants(first))
            for page in range(2, total + 1):
                writer.write_table(_variants(client.variant_page(page, PAGE)[0]))
            return max(total, 1), "list"
        calls = 1
        for start in range(0, len(skus), SKUS_PER_QUERY):
            group = skus[start : start + SKUS_PER_QUERY]
            page, pages = 1, 1
            while page <= pages:
                rows, pages = client.variant_page(page, PAGE, skus=group)
                writer.write_table(_variants(rows))
                calls += 1
                page += 1
        return calls, "skus"


def _variants(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "sku": r.get("sku"),
                "cost": r.get("cost"),
                "msrp": r.get("msrp"),
                "map": r.get("map"),
                "quantity": r.get("quantity"),
                "archived": bool(r.get("archived")),
            }
            for r in rows
            if r.get("sku")
        ],
        schema=_VARIANT_SCHEMA,
    )


def _rebuild(engine: Any, variants: Path) -> tuple[int, int]:
    """``_usd_new_ledger``: our SKUs as the platform holds them. A row the ledger had keeps its
    missing-feed marks; a new row of a SKU the feed lacks takes the warehouse's. SKUs the feed
    lists as archived that the platform lacks are recorded as archived (as a ``notFound`` answer
    to an archive is), so later runs do not send them."""
    money = "DECIMAL(12,2)"
    engine.execute(
        f"""CREATE TEMP TABLE _usd_platform AS
SELECT sku, any_value(CAST(cost AS {money})) AS cost, any_value(CAST(msrp AS {money})) AS msrp,
       any_value(CAST(map AS {money})) AS map, any_value(quantity) AS quantity,
       any_value(archived) AS archived
FROM read_parquet({sql_literal(str(variants))}) v SEMI JOIN _usd_ours o ON o.sku = v.sku GROUP BY sku"""
    )
    engine.execute(
        f"""CREATE TEMP TABLE _usd_new_ledger AS
SELECT p.sku, p.cost, p.msrp, p.map, p.quantity, p.archived, l.source_updated_at,
       CASE WHEN l.sku IS NOT NULL THEN l.missing_feed_seq
            WHEN f.sku IS NOT NULL THEN NULL
            WHEN i.archived AND i.missing_feed_seq IS NULL THEN {_ARCHIVED_BY_WAREHOUSE_SEQ}
            ELSE i.missing_feed_seq END AS missing_feed_seq,
       CASE WHEN l.sku IS NOT NULL THEN l.missing_since
            WHEN f.sku IS NOT NULL THEN NULL
            WHEN i.archived AND i.missing_feed_seq IS NULL THEN TIMESTAMPTZ '1970-01-01 00:00:00+00'
            ELSE i.missing_since END AS missing_since
FROM _usd_platform p
LEFT JOIN _usd_ledger l ON l.sku = p.sku
LEFT JOIN (SELECT DISTINCT sku FROM _usd_pub) f ON f.sku = p.sku
LEFT JOIN _usd_intent i ON i.sku = p.sku
UNION ALL
SELECT f.sku, f.cost, f.msrp, f.map, f.quantity, TRUE, f.source_updated_at, NULL, NULL
FROM _usd_pub f ANTI JOIN _usd_platform p ON p.sku = f.sku WHERE f.archived"""
    )
    differs = " OR ".join(
        f"n.{c} IS DISTINCT FROM l.{c}" for c in ("cost", "msrp", "map", "quantity", "archived")
    )
    on_platform, corrected = engine.execute(
        f"""SELECT (SELECT count(*) FROM _usd_platform),
  (SELECT count(*) FROM _usd_new_ledger n FULL JOIN _usd_ledger l ON l.sku = n.sku
   WHERE n.sku IS NULL OR l.sku IS NULL OR {differs})"""
    ).fetchall()[0]
    return int(on_platform), int(corrected)


def _replace_ledger(
    wh: Warehouse,
    engine: Any,
    account: str,
    run_id: str,
    now: dt.datetime,
    counts: ReconcileCounts,
    partition: Partition | None = None,
) -> None:
    """Swap the account's ledger for the rebuilt one and record the reconcile, in one transaction."""
    p = wh.placeholder
    cols = "sku, cost, msrp, map, quantity, archived, source_updated_at, missing_feed_seq, missing_since"
    select = (
        f"SELECT {sql_literal(account)} AS account, {cols}, {sql_literal(run_id)} AS run_id, "
        f"CAST({sql_literal(now.isoformat())} AS TIMESTAMPTZ) AS published_at FROM _usd_new_ledger"
    )
    with wh.connect() as conn:
        ensure_ledger(wh, conn)
        mine = f"account = {p}" + and_in(partition, wh.dialect)
        wh.execute(conn, f"DELETE FROM {wh.table(LEDGER)} WHERE {mine}", (account,))
        wh.load_batches(conn, wh.table(LEDGER), query_batches(engine, select))
        ensure_reconciles(wh, conn)
        wh.execute(
            conn,
            f"INSERT INTO {wh.table(RECONCILES)} (account, run_id, reconciled_at, our_skus, on_platform, "
            f"ledger_corrected, read_calls) VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p})",
            (
                account,
                run_id,
                now,
                counts.our_skus,
                counts.on_platform,
                counts.ledger_corrected,
                counts.read_calls,
            ),
        )

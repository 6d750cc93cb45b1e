"""Platform side of Get Inventory: publish only what changed since the last successful publish.

A publish ledger (``usdirect_inventory_published``, in the account's warehouse connection) holds,
per SKU, the values the platform last acknowledged. The plan compares the mapped feed with the
ledger in DuckDB: SKUs the ledger lacks are created (``POST /inventory/parents``, 20 per call),
SKUs whose writable values differ are updated (``PUT /inventory/variants``, 50 per call, modify
flags from the template's sync switches), and SKUs a full feed no longer lists are archived with
quantity 0 (in the same ``PUT`` batches). After every acknowledged call the ledger rows of that
batch are committed, so a run killed half-way re-sends only what did not land.

Calls for a plan: ``ceil((updated + archived) / 50) + ceil(created / 20)``, plus one create call
per 20 SKUs the platform reported ``notFound``.

A ledger SKU the full feed lacks is archived only when the ``Absence`` rule says so, the same rule
the warehouse applies; until then the ledger row keeps ``missing_feed_seq``/``missing_since``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from usdirect.domain import metrics
from usdirect.domain.held_changes import PriceRule
from usdirect.domain.inventory import PublishKind, sql_type
from usdirect.domain.progress import Progress
from usdirect.engine.absence import Absence, archive_at_once
from usdirect.engine.base import (
    BATCH_ROWS,
    limit_engine,
    open_engine,
    parquet_source,
    query_batches,
    sql_literal,
)
from usdirect.engine.partitions import Partition, and_in
from usdirect.engine.reuse import MappedFeed, feed_source
from usdirect.targets.platform.inventory_guard import guard_publish
from usdirect.targets.warehouse.inventory import add_columns
from usdirect.targets.warehouse.sql import Warehouse, quote_ident

LEDGER = "usdirect_inventory_published"
PUT_BATCH = 50
POST_BATCH = 20
PRICE_FIELDS = ("cost", "msrp", "map")
VALUE_FIELDS = (*PRICE_FIELDS, "quantity", "archived")
_FLAGS = {"cost": "modifyCost", "msrp": "modifyMsrp", "map": "modifyMap", "quantity": "modifyQuantity"}
_LEDGER_COLUMNS = ("sku", *VALUE_FIELDS, "source_updated_at")
_MISSING_COLUMNS = {"missing_feed_seq": "BIGINT", "missing_since": "TIMESTAMPTZ"}


class PlatformClient(Protocol):
    """The two FlxpointHook calls a publish needs."""

    def update_variants(self, variants: list[dict[str, Any]]) -> dict[str, Any]: ...

    def create_parents(self, parents: list[dict[str, Any]]) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Plan:
    """Local Parquet files with the rows to send, and how many calls they need."""

    updates: Path  # PUT rows: updated and archived SKUs
    creates: Path  # POST rows: new SKUs
    updated: int
    archived: int
    created: int
    unchanged: int
    deferred: int  # new SKUs not sent: changes-only rows, archived SKUs unless archive_unseen, switches off
    missing: int = 0  # ledger SKUs the full feed lacks that are not archived yet
    held: int = 0  # SKUs whose prices the price guard holds back (sent with the ledger's prices)

    @property
    def calls(self) -> int:
        return math.ceil((self.updated + self.archived) / PUT_BATCH) + math.ceil(self.created / POST_BATCH)


@dataclass
class PublishCounts:
    put_calls: int = 0
    post_calls: int = 0
    updated: int = 0
    archived: int = 0
    created: int = 0
    not_found: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def ensure_ledger(wh: Warehouse, conn: Any) -> None:
    t = wh.table(LEDGER)
    wh.execute(
        conn,
        f"""CREATE TABLE IF NOT EXISTS {t} (
    account TEXT NOT NULL,
    sku TEXT NOT NULL,
    cost DECIMAL(12,2),
    msrp DECIMAL(12,2),
    map DECIMAL(12,2),
    quantity BIGINT,
    archived BOOLEAN NOT NULL,
    source_updated_at TIMESTAMPTZ,
    run_id TEXT NOT NULL,
    published_at TIMESTAMPTZ NOT NULL,
    missing_feed_seq BIGINT,
    missing_since TIMESTAMPTZ
)""",
    )
    add_columns(wh, conn, LEDGER, _MISSING_COLUMNS)
    wh.execute(conn, f"CREATE UNIQUE INDEX IF NOT EXISTS {quote_ident(LEDGER + '_uq')} ON {t} (account, sku)")


def writable_values(writable: set[str] | frozenset[str]) -> tuple[str, ...]:
    """The platform value fields this template may write (the sync switches)."""
    return tuple(f for f in VALUE_FIELDS if f in writable)


def plan_publish(
    wh: Warehouse,
    account: str,
    mapped: Path | MappedFeed,
    workdir: Path,
    writable: frozenset[str],
    full: bool,
    absence: Absence | None = None,
    now: dt.datetime | None = None,
    archive_unseen: bool = False,
    partition: Partition | None = None,
    guard: PriceRule | None = None,
    run_id: str = "",
) -> Plan:
    """Compare the mapped rows with the ledger and write the rows to send into ``workdir``.

    ``full``: the feed lists the whole catalog, so ledger SKUs it lacks are marked missing and
    archived when ``absence`` says so (``None``: at once). Otherwise the rows are changes: only SKUs
    already published are updated, and only with newer changes.

    ``archive_unseen``: SKUs the feed lists as archived that the ledger lacks (discontinued on
    first sight) are sent archived as well: the platform may hold them from before this
    integration. It answers ``notFound`` for the others, and the ledger remembers them either way,
    so each is sent once (a reconcile records the ones the platform lacks, so they are not sent).

    ``partition``: ``mapped`` is that slice of the feed, compared with the same slice of the ledger.

    ``guard``: hold anomalous prices back (``usdirect.targets.platform.inventory_guard``), recorded
    as seen by ``run_id``.
    """
    absence = absence or archive_at_once()
    now = now or dt.datetime.now(dt.UTC)
    fields = writable_values(writable)
    can_create = full and "title" in writable
    can_archive = full and "archived" in writable
    with wh.connect() as conn:
        ensure_ledger(wh, conn)
        local = wh.dialect == "duckdb"
        engine = conn if local else open_engine()
        try:
            if local:
                limit_engine(conn, wh.duckdb_memory_limit())
            query = (
                f"SELECT {', '.join((*_LEDGER_COLUMNS, *_MISSING_COLUMNS))} FROM {wh.table(LEDGER)} "
                f"WHERE account = {sql_literal(account)}{and_in(partition, wh.dialect)}"
            )
            _engine_table(wh, conn, engine, "_usd_ledger", query)
            engine.execute(f"CREATE OR REPLACE TEMP VIEW _usd_pub AS SELECT * FROM {feed_source(mapped)}")
            held = 0
            if guard is not None:
                source = feed_source(mapped)
                held = guard_publish(wh, conn, engine, account, guard, run_id, now, source, full, partition)
            due = absence.due_sql("l.missing_feed_seq", "l.missing_since", now) if can_archive else "FALSE"
            unseen = can_archive and archive_unseen
            plan = _write_plan(engine, workdir, fields, can_create, can_archive, full, due, unseen)
            plan = dataclasses.replace(plan, held=held)
            if can_archive:  # without the archived switch nothing is archived, so nothing is missing
                plan = _mark_missing(wh, conn, engine, account, absence, now, plan, due)
            return plan
        finally:
            if not local:
                engine.close()


def _engine_table(wh: Warehouse, conn: Any, engine: Any, name: str, query: str) -> None:
    if wh.dialect == "duckdb":
        engine.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {query}")
        return
    raw = wh.query_arrow(conn, query)
    types = {c: sql_type(c) for c in ("sku", *PRICE_FIELDS, "quantity", "source_updated_at")}
    types |= {"archived": "BOOLEAN", "missing_since": "TIMESTAMPTZ"} | dict.fromkeys(
        ("missing_feed_seq", "platform_seq"), "BIGINT"
    )
    engine.register("_usd_raw", raw)
    casts = ", ".join(f"CAST({c} AS {types[c]}) AS {c}" for c in raw.column_names)
    engine.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT {casts} FROM _usd_raw")
    engine.unregister("_usd_raw")


def _mark_missing(
    wh: Warehouse,
    conn: Any,
    engine: Any,
    account: str,
    absence: Absence,
    now: dt.datetime,
    plan: Plan,
    due: str,
) -> Plan:
    """Mark ledger SKUs this full feed is the first to lack, unmark the ones it lists again.

    Written in the plan's transaction: the marks record what the feed said, not what the platform
    acknowledged. A retry of the same feed finds them set and counts it once.
    """
    p = wh.placeholder
    engine.execute(
        "CREATE OR REPLACE TEMP TABLE _usd_marks AS "
        "SELECT l.sku, TRUE AS mark FROM _usd_ledger l ANTI JOIN _usd_pub p ON p.sku = l.sku "
        "WHERE NOT l.archived AND l.missing_feed_seq IS NULL "
        "UNION ALL SELECT l.sku, FALSE FROM _usd_ledger l SEMI JOIN _usd_pub p ON p.sku = l.sku "
        "WHERE l.missing_feed_seq IS NOT NULL"
    )
    missing = engine.execute(
        f"SELECT count(*) FROM _usd_ledger l ANTI JOIN _usd_pub p ON p.sku = l.sku WHERE NOT l.archived "
        f"AND NOT ({due})"
    ).fetchall()[0][0]
    if wh.dialect == "duckdb":
        source = "_usd_marks"
    else:
        source = "_usd_marks_w"
        wh.execute(conn, f"CREATE TEMP TABLE {source} (sku TEXT NOT NULL, mark BOOLEAN NOT NULL)")
        wh.load_arrow(conn, source, engine.sql("SELECT sku, mark FROM _usd_marks").to_arrow_table())
    wh.execute(
        conn,
        f"UPDATE {wh.table(LEDGER)} AS t SET missing_feed_seq = CASE WHEN m.mark THEN {p} END, "
        f"missing_since = CASE WHEN m.mark THEN {p} END FROM {source} m "
        f"WHERE t.account = {p} AND t.sku = m.sku",
        (absence.feed_seq, now, account),
    )
    return dataclasses.replace(plan, missing=int(missing))


def _write_plan(
    engine: Any,
    workdir: Path,
    fields: tuple[str, ...],
    can_create: bool,
    can_archive: bool,
    full: bool,
    due: str = "TRUE",
    unseen: bool = False,
) -> Plan:
    differs = " OR ".join(f"l.{f} IS DISTINCT FROM p.{f}" for f in fields) or "FALSE"
    newer = "TRUE" if full else "(l.source_updated_at IS NULL OR p.source_updated_at > l.source_updated_at)"
    updates = (
        "SELECT p.sku, p.cost, p.msrp, p.map, p.quantity, p.archived, p.source_updated_at, "
        f"'{PublishKind.UPDATE}' AS _kind "
        f"FROM _usd_pub p JOIN _usd_ledger l ON l.sku = p.sku WHERE {newer} AND ({differs})"
    )
    if can_archive:
        updates += (
            " UNION ALL SELECT l.sku, l.cost, l.msrp, l.map, 0, TRUE, l.source_updated_at, "
            f"'{PublishKind.ARCHIVE}' "
            f"FROM _usd_ledger l ANTI JOIN _usd_pub p ON p.sku = l.sku WHERE NOT l.archived AND ({due})"
        )
    if unseen:
        updates += (
            " UNION ALL SELECT p.sku, p.cost, p.msrp, p.map, p.quantity, TRUE, p.source_updated_at, "
            f"'{PublishKind.ARCHIVE_NEW}' FROM _usd_pub p ANTI JOIN _usd_ledger l ON l.sku = p.sku "
            "WHERE p.archived"
        )
    new = "SELECT p.* FROM _usd_pub p ANTI JOIN _usd_ledger l ON l.sku = p.sku"
    creates = f"{new} WHERE {'NOT p.archived' if can_create else 'FALSE'}"
    workdir.mkdir(parents=True, exist_ok=True)
    paths = {"updates": workdir / "publish-updates.parquet", "creates": workdir / "publish-creates.parquet"}
    for name, sql in (("updates", updates), ("creates", creates)):
        engine.execute(f"COPY ({sql} ORDER BY sku) TO {sql_literal(str(paths[name]))} (FORMAT parquet)")
    n_update, n_archive, n_unseen = engine.execute(
        f"SELECT count(*) FILTER (WHERE _kind = '{PublishKind.UPDATE}'), "
        f"count(*) FILTER (WHERE _kind = '{PublishKind.ARCHIVE}'), "
        f"count(*) FILTER (WHERE _kind = '{PublishKind.ARCHIVE_NEW}') FROM {parquet_source(paths['updates'])}"
    ).fetchall()[0]
    n_create = engine.execute(f"SELECT count(*) FROM {parquet_source(paths['creates'])}").fetchall()[0][0]
    n_new, total = engine.execute(
        f"SELECT (SELECT count(*) FROM ({new})), count(*) FROM _usd_pub"
    ).fetchall()[0]
    return Plan(
        updates=paths["updates"],
        creates=paths["creates"],
        updated=int(n_update),
        archived=int(n_archive) + int(n_unseen),
        created=int(n_create),
        unchanged=int(total) - int(n_update) - int(n_new),
        deferred=int(n_new) - int(n_create) - int(n_unseen),
    )


# --------------------------------------------------------------------------------------------- sending


def publish(
    client: PlatformClient,
    wh: Warehouse,
    account: str,
    run_id: str,
    plan: Plan,
    writable: frozenset[str],
    mapped: Path | MappedFeed | None = None,
) -> PublishCounts:
    """Send a plan. ``mapped`` (the full feed) lets SKUs the platform reports ``notFound`` be created."""
    fields = writable_values(writable)
    counts = PublishCounts()
    missing: list[dict[str, Any]] = []
    progress = Progress("platform publish", plan.updated + plan.archived + plan.created, unit="SKUs")
    for batch in _chunks(_read_rows(plan.updates), PUT_BATCH):
        answer = client.update_variants([_variant(r, fields) for r in batch])
        counts.put_calls += 1
        metrics.incr(metrics.PUBLISH_CALLS, kind="put")
        progress.advance(len(batch))
        not_found = set(answer.get("notFound") or ())
        # A variant the platform lacks needs creating, unless it was to be archived anyway.
        absent = [r for r in batch if r["sku"] in not_found]
        _record(wh, account, run_id, [r for r in batch if r["sku"] not in not_found or r["archived"]])
        counts.updated += sum(
            1 for r in batch if r["_kind"] == PublishKind.UPDATE and r["sku"] not in not_found
        )
        counts.archived += sum(
            1 for r in batch if r["_kind"] != PublishKind.UPDATE and r["sku"] not in not_found
        )
        counts.not_found += len(absent)
        missing.extend(r for r in absent if not r["archived"])
    creates: Iterator[dict[str, Any]] = _read_rows(plan.creates)
    if missing and mapped is not None:
        creates = itertools.chain(creates, _rows_for(mapped, missing))
    for batch in _chunks(creates, POST_BATCH):
        client.create_parents([_parent(r) for r in batch])
        counts.post_calls += 1
        metrics.incr(metrics.PUBLISH_CALLS, kind="post")
        progress.advance(len(batch))
        _record(wh, account, run_id, batch)
        counts.created += len(batch)
    progress.finish()
    return counts


def _read_rows(path: Path) -> Iterator[dict[str, Any]]:
    for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS):
        yield from batch.to_pylist()


def _rows_for(mapped: Path | MappedFeed, planned: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The feed rows of planned updates to create instead, with the planned prices (the price
    guard may have held the feed's back)."""
    prices = {r["sku"]: {f: r[f] for f in PRICE_FIELDS} for r in planned}
    engine = open_engine()
    try:
        engine.register("_usd_missing", pa.table({"sku": pa.array(list(prices), pa.string())}))
        table = engine.sql(
            f"SELECT f.* FROM {feed_source(mapped)} f SEMI JOIN _usd_missing m ON m.sku = f.sku"
        ).to_arrow_table()
    finally:
        engine.close()
    for row in table.to_pylist():
        yield row | prices[row["sku"]]


def _chunks(rows: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for r in rows:
        batch.append(r)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _money(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _variant(r: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "sku": r["sku"],
        "cost": _money(r["cost"]),
        "msrp": _money(r["msrp"]),
        "map": _money(r["map"]),
        "quantity": r["quantity"],
        "archived": bool(r["archived"]),
    }
    for field, flag in _FLAGS.items():
        body[flag] = "update" if field in fields else "none"
    body["modifyArchived"] = "update" if "archived" in fields else "none"
    return body


def _parent(r: dict[str, Any]) -> dict[str, Any]:
    variant = {
        "sku": r["sku"],
        "title": r["title"],
        "upc": r["upc"],
        "mpn": r["mpn"],
        "cost": _money(r["cost"]),
        "msrp": _money(r["msrp"]),
        "map": _money(r["map"]),
        "quantity": r["quantity"],
        "weight": _money(r["weight_lb"]),
        "weightUnit": "pound",
    }
    return {"sku": r["sku"], "title": r["title"], "manufacturer": r["brand"], "variants": [variant]}


def _record(wh: Warehouse, account: str, run_id: str, rows: list[dict[str, Any]]) -> None:
    """Commit what the platform acknowledged (one short transaction per call)."""
    if not rows:
        return
    now = dt.datetime.now(dt.UTC)
    cols = ("account", *_LEDGER_COLUMNS, "run_id", "published_at")
    values = ", ".join(["(" + wh.marks(len(cols)) + ")"] * len(rows))
    params: list[Any] = []
    for r in rows:
        params.extend([account, *(r[c] for c in _LEDGER_COLUMNS), run_id, now])
    updates = ", ".join(f"{c} = excluded.{c}" for c in cols if c not in ("account", "sku"))
    with wh.connect() as conn:
        wh.execute(
            conn,
            f"INSERT INTO {wh.table(LEDGER)} ({', '.join(cols)}) VALUES {values} "
            f"ON CONFLICT (account, sku) DO UPDATE SET {updates}",
            params,
        )


def adopt_published(wh: Warehouse, account: str, run_id: str, mapped: Path | MappedFeed) -> int:
    """Record a mapped feed as already on the platform, without sending it.

    For an account whose platform catalog already matches the feed (for example when moving from
    another integration): the first publish then sends only what differs, not the whole catalog
    (a million SKUs would be 50,000 create calls, seven hours at 2 requests per second).
    """
    p = wh.placeholder
    cols = ", ".join(_LEDGER_COLUMNS)
    with wh.connect() as conn:
        ensure_ledger(wh, conn)
        wh.execute(conn, f"DELETE FROM {wh.table(LEDGER)} WHERE account = {p}", (account,))
        select = (
            f"SELECT {sql_literal(account)} AS account, {cols}, {sql_literal(run_id)} AS run_id, "
            f"now() AS published_at FROM {feed_source(mapped)}"
        )
        if wh.dialect == "duckdb":
            return wh.execute(
                conn, f"INSERT INTO {wh.table(LEDGER)} (account, {cols}, run_id, published_at) {select}"
            )
        engine = open_engine()
        try:
            return wh.load_batches(conn, wh.table(LEDGER), query_batches(engine, select))
        finally:
            engine.close()


def published(wh: Warehouse, account: str) -> pa.Table:
    """The ledger of an account (for tests and the run summary)."""
    p = wh.placeholder
    with wh.connect() as conn:
        ensure_ledger(wh, conn)
        rows = wh.fetchall(
            conn,
            f"SELECT {', '.join(_LEDGER_COLUMNS)} FROM {wh.table(LEDGER)} WHERE account = {p}",
            (account,),
        )
    return pa.Table.from_pylist([dict(zip(_LEDGER_COLUMNS, r, strict=True)) for r in rows])

"""Warehouse side of Get Inventory: current state, history and feed state, applied as a delta.

The delta is worked out before the target is touched: per-SKU row hashes (and the archived flag)
are read back in one query (Postgres: one ``COPY TO STDOUT``), compared with the mapped feed in an
in-process DuckDB, and only new, changed, revived and archived SKUs are sent back. A re-sync that
changes 1% of a catalog therefore writes 1% of the rows. Everything one run writes is one
transaction: a run that fails or is killed leaves the tables as they were.

The SQL that applies the delta is plain enough to run unchanged on DuckDB and Postgres.

``usdirect_inventory_history`` is a change log with validity ranges: when cost, MSRP, MAP,
quantity or status of a SKU changes, the version it replaces (on its first change) and the new
version are recorded, and the previous open version is closed. A SKU that never changed has its
only version in ``usdirect_inventory`` (valid since ``first_seen_at``), which keeps a first load of
a million SKUs from writing a million history rows.

A SKU the full feed lacks is archived only after the ``Absence`` rule says so (several good feeds
in a row); until then it keeps ``missing_feed_seq``/``missing_since``. A SKU first seen in the
changes API carries ``pending_full_feed`` (it lacks title, brand, UPC, weight) until a full feed
brings its whole record.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from usdirect.domain.held_changes import PriceRule
from usdirect.domain.inventory import (
    CHANGE_FIELDS,
    MAPPED_COLUMNS,
    MAPPED_SCHEMA,
    TRACKED,
    row_hash_sql,
    sql_type,
)
from usdirect.domain.progress import Progress
from usdirect.engine.absence import Absence, archive_at_once
from usdirect.engine.base import (
    limit_engine,
    open_engine,
    parquet_source,
    query_batches,
    sql_literal,
)
from usdirect.engine.partitions import Partition, and_in
from usdirect.engine.price_guard import guarded_sql
from usdirect.engine.reuse import MappedFeed, feed_rows, feed_source
from usdirect.targets.warehouse.checks import check_inventory
from usdirect.targets.warehouse.inventory_guard import guard_changes, guard_first_load, guard_full
from usdirect.targets.warehouse.sql import Warehouse, quote_ident

INVENTORY = "usdirect_inventory"
HISTORY = "usdirect_inventory_history"
FEED_STATE = "usdirect_feed_state"

_STAGE = "_usd_inv_stage"
_ARCHIVE = "_usd_inv_archive"
_HIST = "_usd_inv_hist"
_KEYS = "_usd_inv_keys"
_STATE_COLUMNS = ("archived_at", "row_hash", "first_seen_at", "last_changed_at", "run_id")
_COLS = ", ".join(MAPPED_COLUMNS)
# Set on every row a full feed lists: it is present (again) and its record is complete.
_PRESENT = "missing_feed_seq = NULL, missing_since = NULL, pending_full_feed = FALSE, "
_HISTORY_OPEN_INDEX = "CREATE INDEX IF NOT EXISTS {name} ON {t} (account, sku) WHERE valid_to IS NULL"


@dataclass
class LoadCounts:
    """What one load did to ``usdirect_inventory`` (``history`` = rows appended to the history)."""

    read: int = 0
    inserted: int = 0
    updated: int = 0
    revived: int = 0
    unchanged: int = 0
    archived: int = 0
    stale: int = 0
    history: int = 0
    missing: int = 0  # absent from this full feed, not archived yet (see ``Absence``)
    pending: int = 0  # first seen in the changes API, waiting for the full feed (``pending_full_feed``)
    held: int = 0  # prices held back by the price guard (``usdirect_held_changes``)

    @property
    def changed(self) -> int:
        return self.inserted + self.updated + self.revived + self.archived

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class FeedState:
    """The last feed that was fully delivered: its HTTP validators and SKU count (the shrink guard's
    reference)."""

    etag: str | None
    last_modified: str | None
    sku_count: int
    run_id: str
    loaded_at: dt.datetime
    feed_seq: int = 0  # counts the good full feeds of the account (the ``Absence`` rule's clock)


# Columns added after the first release: created on tables that predate them.
_INVENTORY_ADDED = {
    "missing_feed_seq": "BIGINT",
    "missing_since": "TIMESTAMPTZ",
    "pending_full_feed": "BOOLEAN DEFAULT FALSE",
}
_STATE_ADDED = {"feed_seq": "BIGINT"}


def _names(wh: Warehouse) -> dict[str, str]:
    return {
        "inv": wh.table(INVENTORY),
        "hist": wh.table(HISTORY),
        "state": wh.table(FEED_STATE),
        "inv_uq": quote_ident(f"{INVENTORY}_account_sku_uq"),
        "inv_uq_q": _index_name(wh, f"{INVENTORY}_account_sku_uq"),
        "hist_open": quote_ident(f"{HISTORY}_open"),
    }


def _index_name(wh: Warehouse, name: str) -> str:
    return f"{quote_ident(wh.schema)}.{quote_ident(name)}" if wh.schema else quote_ident(name)


def _mapped_ddl() -> str:
    return ",\n    ".join(
        f"{c} {sql_type(c)}{' NOT NULL' if c in ('sku', 'supplier_sku') else ''}" for c in MAPPED_COLUMNS
    )


def ensure_inventory_tables(wh: Warehouse, conn: Any) -> None:
    """Create the three tables (and their indexes) if they do not exist yet."""
    n = _names(wh)
    wh.execute(
        conn,
        f"""CREATE TABLE IF NOT EXISTS {n["inv"]} (
    account TEXT NOT NULL,
    {_mapped_ddl()},
    archived_at TIMESTAMPTZ,
    row_hash BIGINT NOT NULL,
    first_seen_at TIMESTAMPTZ NOT NULL,
    last_changed_at TIMESTAMPTZ NOT NULL,
    run_id TEXT NOT NULL,
    {", ".join(f"{c} {t}" for c, t in _INVENTORY_ADDED.items())}
)""",
    )
    add_columns(wh, conn, INVENTORY, _INVENTORY_ADDED)
    if wh.dialect == "postgres":
        wh.execute(conn, f"CREATE UNIQUE INDEX IF NOT EXISTS {n['inv_uq']} ON {n['inv']} (account, sku)")
    else:
        # DuckDB holds this (ART) index in memory whole: about 380 MB at 5,000,000 SKUs, where a
        # load's commit ran out of its 400 MB cap. Its joins do not use it, and each load inserts
        # only SKUs it found absent (one writer per file), so the key stays unique without it.
        wh.execute(conn, f"DROP INDEX IF EXISTS {n['inv_uq_q']}")
    wh.execute(
        conn,
        f"""CREATE TABLE IF NOT EXISTS {n["hist"]} (
    account TEXT NOT NULL,
    sku TEXT NOT NULL,
    {", ".join(f"{c} {sql_type(c)}" for c in TRACKED)},
    valid_from TIMESTAMPTZ NOT NULL,
    valid_to TIMESTAMPTZ,
    run_id TEXT NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL
)""",
    )
    if wh.dialect == "postgres":
        # Closing the open history row of a changed SKU must not scan the whole (growing) history.
        wh.execute(conn, _HISTORY_OPEN_INDEX.format(name=n["hist_open"], t=n["hist"]))
    wh.execute(
        conn,
        f"""CREATE TABLE IF NOT EXISTS {n["state"]} (
    account TEXT NOT NULL,
    feed TEXT NOT NULL,
    etag TEXT,
    last_modified TEXT,
    sku_count BIGINT NOT NULL,
    run_id TEXT NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL,
    feed_seq BIGINT
)""",
    )
    add_columns(wh, conn, FEED_STATE, _STATE_ADDED)
    wh.execute(
        conn,
        f"CREATE UNIQUE INDEX IF NOT EXISTS {quote_ident(FEED_STATE + '_uq')} "
        f"ON {n['state']} (account, feed)",
    )


def add_columns(wh: Warehouse, conn: Any, table: str, columns: dict[str, str]) -> None:
    """Add the columns a table created by an earlier release lacks.

    Looked up first: ``ALTER TABLE`` takes an exclusive lock on Postgres even when the column
    exists, which would block every reader of the table for the rest of the load's transaction.
    """
    p = wh.placeholder
    rows = wh.fetchall(
        conn,
        "SELECT column_name FROM information_schema.columns "
        f"WHERE table_name = {p} AND table_schema = coalesce({p}, current_schema())",
        (table, wh.schema),
    )
    have = {r[0] for r in rows}
    for column, ddl in columns.items():
        if column not in have:
            wh.execute(conn, f"ALTER TABLE {wh.table(table)} ADD COLUMN {column} {ddl}")


# --------------------------------------------------------------------------------------------- feed state


def get_feed_state(wh: Warehouse, account: str, feed: str = "inventory") -> FeedState | None:
    """The last fully delivered feed for an account, or None before the first good run."""
    p = wh.placeholder
    with wh.connect() as conn:
        ensure_inventory_tables(wh, conn)
        rows = wh.fetchall(
            conn,
            "SELECT etag, last_modified, sku_count, run_id, loaded_at, coalesce(feed_seq, 0) "
            f"FROM {_names(wh)['state']} "
            f"WHERE account = {p} AND feed = {p}",
            (account, feed),
        )
    return FeedState(*rows[0]) if rows else None


def save_feed_state(wh: Warehouse, account: str, state: FeedState, feed: str = "inventory") -> None:
    """Record a feed as delivered; called only after every target has taken it."""
    p = wh.placeholder
    t = _names(wh)["state"]
    with wh.connect() as conn:
        ensure_inventory_tables(wh, conn)
        wh.execute(conn, f"DELETE FROM {t} WHERE account = {p} AND feed = {p}", (account, feed))
        wh.execute(
            conn,
            f"INSERT INTO {t} (account, feed, etag, last_modified, sku_count, run_id, loaded_at, feed_seq) "
            f"VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})",
            (
                account,
                feed,
                state.etag,
                state.last_modified,
                state.sku_count,
                state.run_id,
                state.loaded_at,
                state.feed_seq,
            ),
        )


# --------------------------------------------------------------------------------------------- loads


def load_full(
    wh: Warehouse,
    account: str,
    run_id: str,
    mapped: Path | MappedFeed,
    now: dt.datetime,
    absence: Absence | None = None,
    partition: Partition | None = None,
    guard: PriceRule | None = None,
) -> LoadCounts:
    """Apply a full feed (mapped rows with ``row_hash``, one row per SKU): insert new SKUs, update
    changed ones, revive returning ones, and mark SKUs the feed no longer lists as missing,
    archiving those the ``absence`` rule says are gone (``None``: all of them, at once).

    ``partition``: ``mapped`` is that slice of the feed, compared with the same slice of the
    stored rows only (``inventory_partitions``). ``guard``: hold anomalous prices back
    (``usdirect.targets.warehouse.inventory_guard``)."""
    absence = absence or archive_at_once()
    with wh.connect() as conn:
        _take_turn(wh, conn, account)
        ensure_inventory_tables(wh, conn)
        with _Delta(wh, conn, account, full=True) as delta:
            delta.register_feed(feed_source(mapped))
            counts = LoadCounts(read=feed_rows(mapped))
            delta.read_current(
                "SELECT sku, row_hash, archived, missing_feed_seq, missing_since, "
                f"coalesce(pending_full_feed, FALSE) AS pending_full_feed FROM {_names(wh)['inv']} "
                "WHERE account = {a}" + and_in(partition, wh.dialect)
            )
            if delta.current_is_empty():
                if guard is not None:
                    counts.held = guard_first_load(delta, guard, run_id, now, feed_source(mapped), partition)
                counts.inserted = delta.initial_insert(run_id, now)
                _check(delta, counts, run_id, now, partition)
                return counts
            # Which SKUs changed is decided on three columns first; only their rows are then read
            # whole (a wide join of the whole feed costs more, most of all when it is a MappedFeed).
            delta.engine.execute(
                """CREATE OR REPLACE TEMP TABLE _usd_changed AS
SELECT f.sku, CASE WHEN c.sku IS NULL THEN 'insert'
       WHEN c.archived AND NOT f.archived THEN 'revive' ELSE 'update' END AS _op
FROM (SELECT sku, row_hash, archived FROM _usd_feed) f LEFT JOIN _usd_current c ON c.sku = f.sku
WHERE c.sku IS NULL OR (c.archived AND NOT f.archived) OR c.row_hash <> f.row_hash
   OR c.missing_feed_seq IS NOT NULL OR c.pending_full_feed"""
            )
            rows = _changed_rows(delta, mapped)
            staged = f"SELECT f.*, d._op FROM {rows} f JOIN _usd_changed d ON d.sku = f.sku"
            if guard is not None:
                source = feed_source(mapped)
                counts.held = guard_full(delta, guard, run_id, now, source, "_usd_changed", partition)
                if counts.held:
                    staged = guarded_sql(staged, rehash=row_hash_sql(), stored="_usd_current")
            delta.stage(staged)
            counts.archived, counts.missing = delta.stage_absent(absence, now)
            ops = delta.staged_ops()
            counts.inserted, counts.updated, counts.revived = ops["insert"], ops["update"], ops["revive"]
            counts.unchanged = counts.read - counts.inserted - counts.updated - counts.revived
            counts.history = delta.apply(run_id, now)
            _check(delta, counts, run_id, now, partition)
    return counts


def load_changes(
    wh: Warehouse, account: str, run_id: str, changes: Path, now: dt.datetime, guard: PriceRule | None = None
) -> LoadCounts:
    """Apply price/quantity/status changes (mapped Parquet, one row per SKU) on top of the stored rows.

    A change older than what is stored (``source_updated_at``) is ignored, so replaying an earlier
    window after a later one (a backfill) cannot roll a SKU back. Nothing is archived: only the full
    feed knows what is gone. A SKU not yet known is inserted with the fields the change carries and
    ``pending_full_feed``: title, brand, UPC and weight come only with the full feed, so it is never
    published to the platform before that (the changes path creates nothing there).
    """
    with wh.connect() as conn:
        _take_turn(wh, conn, account)
        ensure_inventory_tables(wh, conn)
        with _Delta(wh, conn, account) as delta:
            delta.register_feed(parquet_source(changes))
            counts = LoadCounts(read=delta.scalar("SELECT count(*) FROM _usd_feed"))
            delta.read_current_for_feed_keys()
            merged = ", ".join(_overlay(c) for c in MAPPED_COLUMNS)
            delta.engine.execute(
                f"""CREATE OR REPLACE TEMP TABLE _usd_merged AS
SELECT {merged}, c.row_hash AS _old_hash, c.sku IS NULL AS _new
FROM _usd_feed x LEFT JOIN _usd_current c ON c.sku = x.sku
WHERE c.sku IS NULL OR c.source_updated_at IS NULL OR x.source_updated_at > c.source_updated_at"""
            )
            counts.stale = counts.read - delta.scalar("SELECT count(*) FROM _usd_merged")
            merged = "_usd_merged"
            if guard is not None:
                counts.held = guard_changes(delta, guard, run_id, now, merged)
                if counts.held:
                    merged = f"({guarded_sql('SELECT * FROM _usd_merged')})"
            delta.stage(
                f"""SELECT * EXCLUDE (_old_hash, _new), CASE WHEN _new THEN 'insert' ELSE 'update' END AS _op
FROM (SELECT m.*, {row_hash_sql("m")} AS row_hash FROM {merged} m) s
WHERE _new OR row_hash <> _old_hash"""
            )
            ops = delta.staged_ops()
            counts.inserted, counts.updated = ops["insert"], ops["update"]
            counts.pending = counts.inserted  # held as pending_full_feed until the full feed lists them
            counts.unchanged = counts.read - counts.stale - counts.inserted - counts.updated
            counts.history = delta.apply(run_id, now)
            _check(delta, counts, run_id, now)
    return counts


def _changed_rows(delta: _Delta, mapped: Path | MappedFeed) -> str:
    """Where the changed SKUs' rows are read from: a feed that builds on a base has them among the
    rows it mapped itself, unless the warehouse holds a SKU otherwise than the base left it (a
    changes run since, or a base that is not the feed loaded last); then from the whole feed."""
    if isinstance(mapped, MappedFeed):
        fresh = mapped.fresh_source()
        outside = f"SELECT count(*) FROM _usd_changed d ANTI JOIN {fresh} f ON f.sku = d.sku"
        if delta.scalar(outside) == 0:
            return fresh
    return "_usd_feed"


def _take_turn(wh: Warehouse, conn: Any, account: str) -> None:
    """One load per account at a time (Postgres; a DuckDB file has one writer anyway).

    The delta is worked out from rows read before the writes, so a concurrent load (a full feed
    and a changes run) waits until this one commits. Taken first, before the table checks whose
    locks would otherwise let two loads deadlock.
    """
    p = wh.placeholder
    if wh.dialect == "postgres":
        wh.execute(
            conn, f"SELECT pg_advisory_xact_lock(hashtext({p}))", (f"{wh.schema}.{INVENTORY}:{account}",)
        )


def _check(
    delta: _Delta, counts: LoadCounts, run_id: str, now: dt.datetime, partition: Partition | None = None
) -> None:
    """The after-load checks (``checks``), inside the load's transaction: a failure rolls it back."""
    offered = "SELECT count(*) FILTER (WHERE NOT archived) FROM _usd_feed"
    feed_active = delta.scalar(offered) if delta.full else None
    check_inventory(
        delta.wh,
        delta.conn,
        INVENTORY,
        delta.account,
        (run_id, now),
        counts.as_dict(),
        and_in(partition, delta.wh.dialect),
        feed_active,
    )


def _overlay(column: str) -> str:
    """Merged value of one column in the changes path: changed fields from the change ``x``, the
    rest from the stored row ``c``."""
    if column == "supplier_sku":
        return "coalesce(c.supplier_sku, x.supplier_sku) AS supplier_sku"
    if column == "sku" or column in CHANGE_FIELDS:
        return f"x.{column}"
    return f"c.{column}"


# --------------------------------------------------------------------------------------------- machinery


class _Delta:
    """One load's delta: computed in DuckDB (the warehouse itself, or an in-process engine beside
    Postgres), staged in the warehouse as a temp table, then applied with set-based statements."""

    def __init__(self, wh: Warehouse, conn: Any, account: str, full: bool = False) -> None:
        self.wh, self.conn, self.account, self.full = wh, conn, account, full
        self.absence: Absence | None = None
        self.n = _names(wh)
        self.local = wh.dialect == "duckdb"
        self.archive_staged = False
        if self.local:
            limit_engine(conn, wh.duckdb_memory_limit())
            self.engine = conn
        else:
            self.engine = open_engine()
            # The delta is small next to the inventory: each statement should look its rows up
            # through the (account, sku) index. At the default page cost (tuned for spinning
            # disks) Postgres hash-joins them against a scan of the whole table instead (0.4 s
            # against 0.13 s for 10,000 of 1,000,000 rows). Only this transaction is affected.
            wh.execute(conn, "SET LOCAL random_page_cost = 1.1")

    def __enter__(self) -> _Delta:
        return self

    def __exit__(self, *exc: object) -> None:
        # Temp tables and views die with the warehouse connection; only the side engine is ours.
        if not self.local:
            self.engine.close()

    def scalar(self, sql: str) -> int:
        return int(self.engine.execute(sql).fetchall()[0][0])

    def register_feed(self, source: str) -> None:
        self.engine.execute(f"CREATE OR REPLACE TEMP VIEW _usd_feed AS SELECT * FROM {source}")

    def read_current(self, sql: str) -> None:
        """Make ``_usd_current`` (sku, row_hash, archived) available to the engine: the warehouse
        table itself on DuckDB, one COPY of three columns from Postgres."""
        query = sql.format(a=sql_literal(self.account))
        if self.local:
            self.engine.execute(f"CREATE OR REPLACE TEMP VIEW _usd_current AS {query}")
            return
        self._read_current_arrow(self.wh.query_arrow(self.conn, query))

    def read_current_for_feed_keys(self) -> None:
        """``_usd_current`` with the full stored rows of the feed's SKUs only (the changes path)."""
        cols = ", ".join(f"t.{c}" for c in (*MAPPED_COLUMNS, "row_hash"))
        join = f"FROM {self.n['inv']} t JOIN {{keys}} k ON k.sku = t.sku WHERE t.account = {{a}}"
        if self.local:
            self.read_current(f"SELECT {cols} " + join.format(keys="_usd_feed", a="{a}"))
            return
        self._to_warehouse(_KEYS, "sku TEXT PRIMARY KEY", "SELECT sku FROM _usd_feed")
        self.read_current(f"SELECT {cols} " + join.format(keys=_KEYS, a="{a}"))

    def _read_current_arrow(self, raw: pa.Table) -> None:
        # Postgres COPY returns text; cast each column back to its type inside DuckDB.
        types = {c: sql_type(c) for c in MAPPED_COLUMNS} | {
            "row_hash": "BIGINT",
            "missing_feed_seq": "BIGINT",
            "missing_since": "TIMESTAMPTZ",
            "pending_full_feed": "BOOLEAN",
        }
        self.engine.register("_usd_current_raw", raw)
        casts = ", ".join(f"CAST({c} AS {types[c]}) AS {c}" for c in raw.column_names)
        self.engine.execute(
            f"CREATE OR REPLACE TEMP TABLE _usd_current AS SELECT {casts} FROM _usd_current_raw"
        )
        self.engine.unregister("_usd_current_raw")

    def current_is_empty(self) -> bool:
        return self.scalar("SELECT count(*) FROM (SELECT 1 FROM _usd_current LIMIT 1)") == 0

    def _batches(self, sql: str) -> Iterator[pa.Table]:
        """Record batches of an engine query, for a Postgres COPY (binary: every column's type
        matches the warehouse table's)."""
        with Progress("warehouse load", None) as progress:
            for batch in query_batches(self.engine, sql):
                yield batch
                progress.advance(batch.num_rows)

    def _to_warehouse(self, table: str, ddl_columns: str, sql: str) -> None:
        """Materialise an engine query as a warehouse temp table (DuckDB: in place; Postgres: COPY)."""
        self.wh.execute(self.conn, f"DROP TABLE IF EXISTS {table}")
        if self.local:
            self.engine.execute(f"CREATE TEMP TABLE {table} AS {sql}")
            return
        self.wh.execute(self.conn, f"CREATE TEMP TABLE {table} ({ddl_columns})")
        self.wh.load_batches(self.conn, table, self._batches(sql))
        # The row count and the key's statistics are what the planner needs; analysing every
        # column of a wide temp table costs several times more.
        self.wh.execute(self.conn, f"ANALYZE {table} (sku)")

    def stage(self, sql: str) -> None:
        ddl = f"{_mapped_ddl()}, row_hash BIGINT NOT NULL, _op TEXT NOT NULL"
        select = f"SELECT {_COLS}, row_hash, _op FROM ({sql}) q"
        self._to_warehouse(_STAGE, ddl, select)

    def stage_absent(self, absence: Absence, now: dt.datetime) -> tuple[int, int]:
        """Stage the SKUs the feed lacks that need a write: ``mark`` (first feed to lack them)
        and ``due`` (to archive now). Returns (archived, still missing)."""
        due = absence.due_sql("missing_feed_seq", "missing_since", now)
        self.engine.execute(
            f"""CREATE OR REPLACE TEMP TABLE _usd_absent AS
SELECT sku, missing_feed_seq IS NULL AS mark, {due} AS due
FROM (SELECT c.* FROM _usd_current c ANTI JOIN _usd_feed f ON f.sku = c.sku WHERE NOT c.archived) a"""
        )
        self._to_warehouse(
            _ARCHIVE,
            "sku TEXT NOT NULL, mark BOOLEAN NOT NULL, due BOOLEAN NOT NULL",
            "SELECT sku, mark, due FROM _usd_absent WHERE mark OR due",
        )
        self.archive_staged, self.absence = True, absence
        archived, absent = self.engine.execute(
            "SELECT count(*) FILTER (WHERE due), count(*) FROM _usd_absent"
        ).fetchall()[0]
        return int(archived), int(absent) - int(archived)

    def staged_ops(self) -> dict[str, int]:
        rows = self.wh.fetchall(self.conn, f"SELECT _op, count(*) FROM {_STAGE} GROUP BY _op")
        return {"insert": 0, "update": 0, "revive": 0} | {op: int(n) for op, n in rows}

    def initial_insert(self, run_id: str, now: dt.datetime) -> int:
        """First load of an account: no delta to compute, so rows go straight into the table
        (on an empty table the unique index is rebuilt once instead of maintained per row)."""
        inv = self.n["inv"]
        empty_table = not self.local and not self.wh.fetchall(self.conn, f"SELECT 1 FROM {inv} LIMIT 1")
        if empty_table:
            self.wh.execute(self.conn, f"DROP INDEX IF EXISTS {self.n['inv_uq_q']}")
        constants = {
            "account": sql_literal(self.account),
            "first_seen_at": f"CAST({sql_literal(now.isoformat())} AS TIMESTAMPTZ)",
            "last_changed_at": f"CAST({sql_literal(now.isoformat())} AS TIMESTAMPTZ)",
            "run_id": sql_literal(run_id),
        }
        archived_at = f"CASE WHEN archived THEN {constants['first_seen_at']} END AS archived_at"
        if self.local:
            names = ", ".join(constants)
            inserted = self.wh.execute(
                self.conn,
                f"INSERT INTO {inv} ({names}, {_COLS}, archived_at, row_hash) "
                f"SELECT {', '.join(constants.values())}, {_COLS}, {archived_at}, row_hash FROM _usd_feed",
            )
        else:
            # Constant columns become column defaults for the COPY (about a fifth less to send and
            # parse), then the defaults are dropped again, all inside the load's transaction.
            alter = ", ".join(f"ALTER COLUMN {k} SET DEFAULT {v}" for k, v in constants.items())
            self.wh.execute(self.conn, f"ALTER TABLE {inv} {alter}")
            select = f"SELECT {_COLS}, {archived_at}, row_hash FROM _usd_feed"
            inserted = self.wh.load_batches(self.conn, inv, self._batches(select))
            drop = ", ".join(f"ALTER COLUMN {k} DROP DEFAULT" for k in constants)
            self.wh.execute(self.conn, f"ALTER TABLE {inv} {drop}")
        if empty_table:
            self.wh.execute(self.conn, f"CREATE UNIQUE INDEX {self.n['inv_uq']} ON {inv} (account, sku)")
        if not self.local:
            # Fresh statistics of the columns the next load looks rows up by, so that its joins use
            # the index (autovacuum may be late; it analyses the other columns soon after this
            # commit, a million new rows being far past its threshold). All 28 columns took 0.5 s
            # of a million-row load, these two about a quarter of that.
            self.wh.execute(self.conn, f"ANALYZE {inv} (account, sku)")
        return inserted

    def apply(self, run_id: str, now: dt.datetime) -> int:
        """Apply the staged delta; returns the number of history rows appended."""
        wh, c, a = self.wh, self.conn, self.account
        p = wh.placeholder
        inv, hist = self.n["inv"], self.n["hist"]
        tracked = ", ".join(TRACKED)
        differs = " OR ".join(f"t.{f} IS DISTINCT FROM s.{f}" for f in TRACKED)
        wh.execute(c, f"DROP TABLE IF EXISTS {_HIST}")
        wh.execute(
            c,
            f"CREATE TEMP TABLE {_HIST} AS SELECT s.sku, {', '.join('s.' + f for f in TRACKED)}, "
            f"coalesce(s.source_updated_at, {p}) AS valid_from FROM {_STAGE} s "
            f"JOIN {inv} t ON t.account = {p} AND t.sku = s.sku WHERE {differs}",
            (now, a),
        )
        # A SKU's first change also records the version it replaces (a SKU that never changed has
        # its only version in usdirect_inventory), then the open version is closed and the new one
        # opened. While the account has no history yet, every change is a first one: Postgres would
        # otherwise re-scan the empty history table once per changed SKU (0.35 s for 9,000).
        first_only = (
            f"WHERE NOT EXISTS (SELECT 1 FROM {hist} h WHERE h.account = t.account AND h.sku = t.sku "
            "AND h.valid_to IS NULL)"
            if wh.fetchall(c, f"SELECT 1 FROM {hist} WHERE account = {p} AND valid_to IS NULL LIMIT 1", (a,))
            else ""
        )
        history = wh.execute(
            c,
            f"INSERT INTO {hist} (account, sku, {tracked}, valid_from, valid_to, run_id, recorded_at) "
            f"SELECT t.account, t.sku, {', '.join('t.' + f for f in TRACKED)}, "
            f"coalesce(t.source_updated_at, t.first_seen_at), n.valid_from, t.run_id, {p} "
            f"FROM {inv} t JOIN {_HIST} n ON t.account = {p} AND t.sku = n.sku {first_only}",
            (now, a),
        )
        wh.execute(
            c,
            f"UPDATE {hist} AS h SET valid_to = n.valid_from FROM {_HIST} n "
            f"WHERE h.account = {p} AND h.sku = n.sku AND h.valid_to IS NULL",
            (a,),
        )
        history += wh.execute(
            c,
            f"INSERT INTO {hist} (account, sku, {tracked}, valid_from, valid_to, run_id, recorded_at) "
            f"SELECT {p}, sku, {tracked}, valid_from, NULL, {p}, {p} FROM {_HIST}",
            (a, run_id, now),
        )
        # DuckDB: descriptive text rarely changes, and rewriting strings is what makes an UPDATE
        # expensive (1.2 s instead of 0.07 s for 10,000 rows), so it is set only where it differs.
        # Postgres writes a whole new row version on any UPDATE: one statement saves a second join.
        text = [
            col
            for col in MAPPED_COLUMNS
            if col not in ("sku", *TRACKED) and MAPPED_SCHEMA.field(col).type == pa.string()
        ]
        values = [col for col in MAPPED_COLUMNS if col != "sku" and (col not in text or not self.local)]
        wh.execute(
            c,
            f"UPDATE {inv} AS t SET {', '.join(f'{col} = s.{col}' for col in values)}, "
            f"archived_at = CASE WHEN s.archived THEN coalesce(t.archived_at, {p}) END, "
            "row_hash = s.row_hash, "
            f"{_PRESENT if self.full else ''}last_changed_at = {p}, run_id = {p} FROM {_STAGE} s "
            f"WHERE t.account = {p} AND t.sku = s.sku AND s._op <> 'insert'",
            (now, now, run_id, a),
        )
        if self.local:
            wh.execute(
                c,
                f"UPDATE {inv} AS t SET {', '.join(f'{col} = s.{col}' for col in text)} FROM {_STAGE} s "
                f"WHERE t.account = {p} AND t.sku = s.sku AND s._op <> 'insert' AND ("
                + " OR ".join(f"t.{col} IS DISTINCT FROM s.{col}" for col in text)
                + ")",
                (a,),
            )
        wh.execute(
            c,
            f"INSERT INTO {inv} (account, {_COLS}, {', '.join(_STATE_COLUMNS)}, pending_full_feed) "
            f"SELECT {p}, {_COLS}, CASE WHEN archived THEN {p} END, row_hash, {wh.marks(4)} FROM {_STAGE} "
            "WHERE _op = 'insert'",
            (a, now, now, now, run_id, not self.full),
        )
        if self.archive_staged:
            assert self.absence is not None
            wh.execute(
                c,
                f"UPDATE {inv} SET missing_feed_seq = {p}, missing_since = {p} "
                f"WHERE account = {p} AND sku IN (SELECT sku FROM {_ARCHIVE} WHERE mark)",
                (self.absence.feed_seq, now, a),
            )
            wh.execute(
                c,
                f"UPDATE {inv} SET archived = TRUE, archived_at = {p}, last_changed_at = {p}, run_id = {p} "
                f"WHERE account = {p} AND sku IN (SELECT sku FROM {_ARCHIVE} WHERE due)",
                (now, now, run_id, a),
            )
        return history

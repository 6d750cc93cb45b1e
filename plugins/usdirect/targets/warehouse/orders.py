"""Warehouse side of Send Orders, Get Shipments and Get Invoice (DuckDB and Postgres alike).

Fulfillment requests double as the submission ledger: a PO is marked ``submitting`` (with its
attempt count) in its own committed transaction *before* the order is sent, so a killed worker
leaves a trace that the next run resolves by asking US Direct instead of sending again.
Shipments and invoices arrive in batches and are upserted set-based: bulk-load into a temporary
stage table, then one ``INSERT ... ON CONFLICT`` per table. Only portable SQL is used
(``ON CONFLICT``, ``DISTINCT ON``, ``UPDATE ... FROM``, ``CONCAT_WS``), valid on both engines.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa

from usdirect.targets.warehouse.sql import Warehouse

FR = "fulfillment_requests"
FR_LINES = "fulfillment_request_lines"
SHIPMENTS = "usdirect_shipments"
SHIPMENT_ITEMS = "usdirect_shipment_items"
INVOICES = "usdirect_invoices"
INVOICE_LINES = "usdirect_invoice_lines"
RECONCILIATION = "usdirect_po_reconciliation"

# Ledger states of a fulfillment request.
PENDING = "pending"
SUBMITTING = "submitting"
SUBMITTED = "submitted"
NEEDS_ATTENTION = "needs_attention"

Columns = tuple[tuple[str, str], ...]

FR_COLUMNS: Columns = (
    ("po_number", "TEXT NOT NULL"),
    ("fr_id", "BIGINT NOT NULL"),
    ("source", "TEXT NOT NULL"),
    ("order_number", "TEXT"),
    ("inserted_at", "TIMESTAMPTZ"),
    ("shipping_carrier", "TEXT"),
    ("shipping_method", "TEXT"),
    ("shipping_code", "TEXT"),
    ("ship_name", "TEXT"),
    ("ship_company", "TEXT"),
    ("ship_address1", "TEXT"),
    ("ship_address2", "TEXT"),
    ("ship_city", "TEXT"),
    ("ship_state", "TEXT"),
    ("ship_postal", "TEXT"),
    ("ship_country", "TEXT"),
    ("ship_phone", "TEXT"),
    ("ship_email", "TEXT"),
    ("status", "TEXT NOT NULL"),
    ("supplier_order_id", "TEXT"),
    ("order_status", "TEXT"),
    ("submitted_at", "TIMESTAMPTZ"),
    ("attempts", "INTEGER NOT NULL"),
    ("last_attempt_at", "TIMESTAMPTZ"),
    ("last_error", "TEXT"),
    ("invoice_checked_at", "TIMESTAMPTZ"),
    ("invoice_problem", "TEXT"),
    ("updated_at", "TIMESTAMPTZ NOT NULL"),
)
FR_LINE_COLUMNS: Columns = (
    ("po_number", "TEXT NOT NULL"),
    ("line_number", "INTEGER NOT NULL"),
    ("item_id", "BIGINT"),
    ("sku", "TEXT NOT NULL"),
    ("title", "TEXT"),
    ("quantity", "INTEGER"),
    ("unit_cost", "DECIMAL(12,2)"),
    ("line_status", "TEXT"),
    ("line_reason", "TEXT"),
)
SHIPMENT_COLUMNS: Columns = (
    ("shipment_id", "TEXT NOT NULL"),
    ("po_number", "TEXT NOT NULL"),
    ("carrier", "TEXT"),
    ("shipping_code", "TEXT"),
    ("method", "TEXT"),
    ("tracking_number", "TEXT"),
    ("status", "TEXT"),
    ("supplier_status", "TEXT"),
    ("ship_date", "DATE"),
    ("updated_at", "TIMESTAMPTZ"),
)
SHIPMENT_META: Columns = (
    ("first_seen_at", "TIMESTAMPTZ NOT NULL"),
    ("last_seen_at", "TIMESTAMPTZ NOT NULL"),
    ("run_id", "TEXT NOT NULL"),
    ("platform_shipment_id", "BIGINT"),
    ("platform_status", "TEXT"),
    ("platform_error", "TEXT"),
)
SHIPMENT_ITEM_COLUMNS: Columns = (
    ("shipment_id", "TEXT NOT NULL"),
    ("line_number", "INTEGER NOT NULL"),
    ("item_number", "TEXT"),
    ("sku", "TEXT"),
    ("quantity", "INTEGER"),
)
INVOICE_COLUMNS: Columns = (
    ("invoice_number", "TEXT NOT NULL"),
    ("po_number", "TEXT NOT NULL"),
    ("invoice_date", "DATE"),
    ("status", "TEXT"),
    ("supplier_status", "TEXT"),
    ("currency", "TEXT"),
    ("total", "DECIMAL(12,2)"),
    ("shipping", "DECIMAL(12,2)"),
    ("fees", "DECIMAL(12,2)"),
    ("tax", "DECIMAL(12,2)"),
    ("check_problem", "TEXT"),
)
INVOICE_META: Columns = (
    ("first_seen_at", "TIMESTAMPTZ NOT NULL"),
    ("last_seen_at", "TIMESTAMPTZ NOT NULL"),
    ("run_id", "TEXT NOT NULL"),
    ("platform_invoice_id", "BIGINT"),
    ("platform_status", "TEXT"),
    ("platform_error", "TEXT"),
)
INVOICE_LINE_COLUMNS: Columns = (
    ("invoice_number", "TEXT NOT NULL"),
    ("line_number", "INTEGER NOT NULL"),
    ("item_number", "TEXT"),
    ("sku", "TEXT"),
    ("quantity", "INTEGER"),
    ("unit_cost", "DECIMAL(12,2)"),
    ("amount", "DECIMAL(12,2)"),
)

_TABLES: tuple[tuple[str, Columns, tuple[str, ...]], ...] = (
    (FR, FR_COLUMNS, ("po_number",)),
    (FR_LINES, FR_LINE_COLUMNS, ("po_number", "line_number")),
    (SHIPMENTS, SHIPMENT_COLUMNS + SHIPMENT_META, ("shipment_id",)),
    (SHIPMENT_ITEMS, SHIPMENT_ITEM_COLUMNS, ("shipment_id", "line_number")),
    (INVOICES, INVOICE_COLUMNS + INVOICE_META, ("invoice_number",)),
    (INVOICE_LINES, INVOICE_LINE_COLUMNS, ("invoice_number", "line_number")),
)


def _names(cols: Columns) -> list[str]:
    return [c for c, _ in cols]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def ensure_tables(wh: Warehouse, conn: Any) -> None:
    """Create the order, shipment and invoice tables and the reconciliation view if missing."""
    for name, cols, key in _TABLES:
        body = ", ".join(f"{c} {t}" for c, t in cols)
        wh.execute(
            conn, f"CREATE TABLE IF NOT EXISTS {wh.table(name)} ({body}, PRIMARY KEY ({', '.join(key)}))"
        )
    # Created once, not replaced on every call: concurrent CREATE OR REPLACE VIEW statements
    # from parallel tasks conflict on Postgres. A view with other columns (an earlier version of
    # the package) is dropped and created anew.
    columns = [
        r[0]
        for r in wh.fetchall(
            conn,
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = %s AND table_schema = COALESCE(%s, current_schema()) "
            "ORDER BY ordinal_position",
            (RECONCILIATION, wh.schema),
        )
    ]
    if tuple(columns) != RECONCILIATION_COLUMNS:
        if columns:
            wh.execute(conn, f"DROP VIEW IF EXISTS {wh.table(RECONCILIATION)}")
        wh.execute(conn, f"CREATE VIEW {wh.table(RECONCILIATION)} AS {_reconciliation_sql(wh)}")


def _stage(wh: Warehouse, conn: Any, name: str, cols: Columns, data: pa.Table) -> str:
    """Bulk-load ``data`` into a fresh temporary table shaped like ``cols``; returns its name."""
    stage = f"_usd_stage_{name}"
    wh.execute(conn, f"DROP TABLE IF EXISTS {stage}")
    plain = ", ".join(f"{c} {t.replace(' NOT NULL', '')}" for c, t in cols)
    wh.execute(conn, f"CREATE TEMP TABLE {stage} ({plain})")
    wh.load_arrow(conn, stage, data.select(_names(cols)))
    return stage


# --- fulfillment requests: seeding and the submission ledger -------------------------------


_IMPORT_COLUMNS = (*_names(FR_COLUMNS[:19]), "attempts", "updated_at")
_IMPORT_LINE_COLUMNS = FR_LINE_COLUMNS[:7]


def _fr_rows(frs: Iterable[dict[str, Any]], source: str) -> tuple[pa.Table, pa.Table]:
    """Platform-shaped fulfillment requests as (requests, lines) Arrow tables."""
    heads: list[dict[str, Any]] = []
    lines: list[dict[str, Any]] = []
    now = _now()
    for fr in frs:
        method = fr.get("shippingMethod") or {}
        addr = fr.get("shippingAddress") or {}
        po = fr["fulfillmentRequestNumber"]
        heads.append(
            {
                "po_number": po,
                "fr_id": int(fr["id"]),
                "source": source,
                "order_number": fr.get("orderNumber"),
                "inserted_at": _timestamp(fr.get("insertedAt")),
                "shipping_carrier": method.get("carrier"),
                "shipping_method": method.get("method"),
                "shipping_code": method.get("shippingCode"),
                "ship_name": addr.get("name"),
                "ship_company": addr.get("companyName"),
                "ship_address1": addr.get("addressLine1"),
                "ship_address2": addr.get("addressLine2"),
                "ship_city": addr.get("city"),
                "ship_state": addr.get("stateCode"),
                "ship_postal": addr.get("postal"),
                "ship_country": addr.get("countryCode"),
                "ship_phone": addr.get("phone"),
                "ship_email": addr.get("email"),
                "status": PENDING,
                "attempts": 0,
                "updated_at": now,
            }
        )
        for n, item in enumerate(fr.get("items") or [], start=1):
            cost = item.get("cost")
            lines.append(
                {
                    "po_number": po,
                    "line_number": n,
                    "item_id": item.get("id"),
                    "sku": item.get("sku"),
                    "title": item.get("title"),
                    "quantity": item.get("quantity"),
                    "unit_cost": None if cost is None else Decimal(str(cost)),
                }
            )
    head_schema = pa.schema([(c, _arrow_type(c)) for c in _IMPORT_COLUMNS])
    line_schema = pa.schema([(c, _arrow_type(c)) for c in _names(_IMPORT_LINE_COLUMNS)])
    return (
        pa.Table.from_pylist(heads, schema=head_schema),
        pa.Table.from_pylist(lines, schema=line_schema),
    )


def _timestamp(value: Any) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value))


_ARROW = {
    "inserted_at": pa.timestamp("us", tz="UTC"),
    "fr_id": pa.int64(),
    "item_id": pa.int64(),
    "attempts": pa.int32(),
    "line_number": pa.int32(),
    "quantity": pa.int32(),
    "unit_cost": pa.decimal128(12, 2),
    "updated_at": pa.timestamp("us", tz="UTC"),
}


def _arrow_type(col: str) -> pa.DataType:
    return _ARROW.get(col, pa.string())


def import_fulfillment_requests(
    wh: Warehouse, conn: Any, frs: Sequence[dict[str, Any]], source: str = "platform"
) -> int:
    """Add platform-shaped fulfillment requests as ``pending``; POs already known are left alone.

    Used to seed the demo warehouse from the sandbox platform's FRs and, when both targets are
    configured, to keep the ledger of platform FRs in the warehouse. Returns the rows added.
    """
    ensure_tables(wh, conn)
    if not frs:
        return 0
    heads, lines = _fr_rows(frs, source)
    cols = tuple((c, t) for c, t in FR_COLUMNS if c in _IMPORT_COLUMNS)
    stage = _stage(wh, conn, FR, cols, heads)
    line_cols = _IMPORT_LINE_COLUMNS
    stage_lines = _stage(wh, conn, FR_LINES, line_cols, lines)
    t, tl = wh.table(FR), wh.table(FR_LINES)
    names = ", ".join(_names(cols))
    new = wh.fetchall(
        conn,
        f"SELECT count(DISTINCT s.po_number) FROM {stage} s "
        f"WHERE NOT EXISTS (SELECT 1 FROM {t} f WHERE f.po_number = s.po_number)",
    )[0][0]
    wh.execute(
        conn,
        f"INSERT INTO {tl} ({', '.join(_names(line_cols))}) "
        f"SELECT DISTINCT ON (po_number, line_number) {', '.join(_names(line_cols))} FROM {stage_lines} sl "
        f"WHERE NOT EXISTS (SELECT 1 FROM {t} f WHERE f.po_number = sl.po_number) "
        "ORDER BY po_number, line_number "
        "ON CONFLICT (po_number, line_number) DO NOTHING",
    )
    wh.execute(
        conn,
        f"INSERT INTO {t} ({names}) SELECT DISTINCT ON (po_number) {names} FROM {stage} "
        "ORDER BY po_number ON CONFLICT (po_number) DO NOTHING",
    )
    return int(new)


def seed_demo_requests(wh: Warehouse, platform_frs: Sequence[dict[str, Any]]) -> int:
    """Demo: copy the sandbox platform's US Direct requests into the warehouse as ``pending``
    (what a channel integration would write); other sources' requests are left out."""
    frs = [fr for fr in platform_frs if fr.get("sourceName") == "US Direct"]
    with wh.connect() as conn:
        return import_fulfillment_requests(wh, conn, frs, source="demo")


@dataclass(frozen=True)
class LedgerEntry:
    """A fulfillment request as the ledger knows it, plus its platform-shaped JSON."""

    po_number: str
    status: str
    attempts: int
    fr: dict[str, Any]


def open_fulfillment_requests(
    wh: Warehouse,
    conn: Any,
    po_numbers: Sequence[str] | None = None,
    limit: int | None = None,
) -> list[LedgerEntry]:
    """Requests still to send (``pending``, or ``submitting`` left by an interrupted run).

    With ``po_numbers`` only those are returned, also when they are ``needs_attention`` (a person
    fixed the data and asks for a resend); submitted POs are never returned.
    Each comes shaped as the platform's JSON so one mapping template serves both sources.
    """
    ensure_tables(wh, conn)
    t, tl = wh.table(FR), wh.table(FR_LINES)
    cols = _names(FR_COLUMNS)
    if po_numbers:
        marks = ", ".join(["%s"] * len(po_numbers))
        where, params = (
            f"po_number IN ({marks}) AND status <> '{SUBMITTED}'",
            list(po_numbers),
        )
    else:
        where, params = f"status IN ('{PENDING}', '{SUBMITTING}')", []
    sql = f"SELECT {', '.join(cols)} FROM {t} WHERE {where} ORDER BY inserted_at, po_number"
    if limit:
        sql += f" LIMIT {int(limit)}"
    heads = [dict(zip(cols, row, strict=True)) for row in wh.fetchall(conn, sql, params)]
    if not heads:
        return []
    marks = ", ".join(["%s"] * len(heads))
    line_cols = ("po_number", "line_number", "item_id", "sku", "title", "quantity", "unit_cost")
    by_po: dict[str, list[dict[str, Any]]] = {}
    for row in wh.fetchall(
        conn,
        f"SELECT {', '.join(line_cols)} FROM {tl} WHERE po_number IN ({marks}) "
        "ORDER BY po_number, line_number",
        [h["po_number"] for h in heads],
    ):
        line = dict(zip(line_cols, row, strict=True))
        by_po.setdefault(line["po_number"], []).append(line)
    return [
        LedgerEntry(
            h["po_number"], h["status"], int(h["attempts"]), _fr_json(h, by_po.get(h["po_number"], []))
        )
        for h in heads
    ]


def _fr_json(h: dict[str, Any], lines: list[dict[str, Any]]) -> dict[str, Any]:
    inserted = h["inserted_at"]
    return {
        "id": int(h["fr_id"]),
        "fulfillmentRequestNumber": h["po_number"],
        "orderNumber": h["order_number"],
        "status": "Unprocessed",
        "insertedAt": inserted.astimezone(dt.UTC).isoformat()
        if isinstance(inserted, dt.datetime)
        else inserted,
        "shippingMethod": {
            "carrier": h["shipping_carrier"],
            "method": h["shipping_method"],
            "shippingCode": h["shipping_code"],
        },
        "shippingAddress": {
            "name": h["ship_name"],
            "companyName": h["ship_company"],
            "addressLine1": h["ship_address1"],
            "addressLine2": h["ship_address2"],
            "city": h["ship_city"],
            "stateCode": h["ship_state"],
            "postal": h["ship_postal"],
            "countryCode": h["ship_country"],
            "phone": h["ship_phone"],
            "email": h["ship_email"],
        },
        "items": [
            {
                "id": line["item_id"],
                "sku": line["sku"],
                "quantity": line["quantity"],
                "cost": None if line["unit_cost"] is None else float(line["unit_cost"]),
                "title": line["title"],
            }
            for line in lines
        ],
    }


@dataclass(frozen=True)
class LedgerRow:
    """A request's ledger columns (what Send Orders did with it so far)."""

    po_number: str
    status: str
    attempts: int
    supplier_order_id: str | None
    order_status: str | None
    last_error: str | None


def ledger_rows(wh: Warehouse, conn: Any, po_numbers: Sequence[str]) -> dict[str, LedgerRow]:
    """Ledger state of the given POs (those the warehouse knows)."""
    ensure_tables(wh, conn)
    out: dict[str, LedgerRow] = {}
    for start in range(0, len(po_numbers), 500):
        chunk = list(po_numbers[start : start + 500])
        marks = ", ".join(["%s"] * len(chunk))
        for row in wh.fetchall(
            conn,
            f"SELECT po_number, status, attempts, supplier_order_id, order_status, last_error "
            f"FROM {wh.table(FR)} WHERE po_number IN ({marks})",
            chunk,
        ):
            out[row[0]] = LedgerRow(row[0], row[1], int(row[2]), row[3], row[4], row[5])
    return out


def mark_submitting(wh: Warehouse, po_number: str) -> int:
    """Durably record an attempt *before* sending it; returns the attempt count now stored."""
    with wh.connect() as conn:
        rows = wh.fetchall(
            conn,
            f"UPDATE {wh.table(FR)} SET status = %s, attempts = attempts + 1, last_attempt_at = %s, "
            "updated_at = %s WHERE po_number = %s RETURNING attempts",
            (SUBMITTING, _now(), _now(), po_number),
        )
    if not rows:
        raise KeyError(f"PO {po_number} is not in {FR}; it cannot be submitted from the warehouse")
    return int(rows[0][0])


def claim_attempt(wh: Warehouse, po_number: str, attempts_seen: int) -> int | None:
    """Claim a PO for one send, atomically: mark it ``submitting`` with the attempt counted,
    only if nobody counted an attempt since this run read it (``attempts_seen``).

    Returns the attempt count now stored, or None when another run claimed or settled the PO
    first (two runs never both send it). Committed before the call to US Direct is made.
    """
    with wh.connect() as conn:
        rows = wh.fetchall(
            conn,
            f"UPDATE {wh.table(FR)} SET status = %s, attempts = attempts + 1, last_attempt_at = %s, "
            "updated_at = %s WHERE po_number = %s AND attempts = %s AND status <> %s RETURNING attempts",
            (SUBMITTING, _now(), _now(), po_number, attempts_seen, SUBMITTED),
        )
    return int(rows[0][0]) if rows else None


NOTICES = "usdirect_order_notices"


def claim_notice(wh: Warehouse, account: str, reason: str, every: dt.timedelta) -> bool:
    """True for the first caller in each ``every`` period per account and reason (atomic), so
    a reminder repeated by every scheduled run reaches people at most that often."""
    now = _now()
    with wh.connect() as conn:
        wh.execute(
            conn,
            f"CREATE TABLE IF NOT EXISTS {wh.table(NOTICES)} (account TEXT NOT NULL, reason TEXT NOT NULL, "
            "last_sent_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (account, reason))",
        )
        rows = wh.fetchall(
            conn,
            f"INSERT INTO {wh.table(NOTICES)} AS n (account, reason, last_sent_at) "
            "VALUES (%s, %s, CAST(%s AS TIMESTAMPTZ)) ON CONFLICT (account, reason) DO UPDATE "
            "SET last_sent_at = EXCLUDED.last_sent_at WHERE n.last_sent_at <= CAST(%s AS TIMESTAMPTZ) "
            "RETURNING account",
            (account, reason, now, now - every),
        )
    return bool(rows)


def record_submitted(
    wh: Warehouse,
    po_number: str,
    supplier_order_id: str | None,
    order_status: str | None,
    submitted_at: dt.datetime,
    lines: Sequence[tuple[int, str | None, str | None]],
    note: str | None = None,
) -> None:
    """Store what US Direct made of the order: its id, status and each line's outcome."""
    with wh.connect() as conn:
        wh.execute(
            conn,
            f"UPDATE {wh.table(FR)} SET status = %s, supplier_order_id = %s, order_status = %s, "
            "submitted_at = COALESCE(submitted_at, %s), last_error = %s, updated_at = %s "
            "WHERE po_number = %s",
            (SUBMITTED, supplier_order_id, order_status, submitted_at, note, _now(), po_number),
        )
        if lines:
            values = ", ".join(["(CAST(%s AS INTEGER), CAST(%s AS TEXT), CAST(%s AS TEXT))"] * len(lines))
            params: list[Any] = [x for line in lines for x in line]
            wh.execute(
                conn,
                f"UPDATE {wh.table(FR_LINES)} AS l SET line_status = v.s, line_reason = v.r "
                f"FROM (VALUES {values}) AS v(n, s, r) WHERE l.po_number = %s AND l.line_number = v.n",
                [*params, po_number],
            )


def record_problem(wh: Warehouse, po_number: str, status: str, message: str) -> None:
    """Set a request's state with a message: ``needs_attention``, or ``pending`` / ``submitting``
    with the last error when the run could not finish it."""
    with wh.connect() as conn:
        wh.execute(
            conn,
            f"UPDATE {wh.table(FR)} SET status = %s, last_error = %s, updated_at = %s WHERE po_number = %s",
            (status, message, _now(), po_number),
        )


# --- shipments --------------------------------------------------------------------------------


@dataclass(frozen=True)
class UpsertCounts:
    """Rows seen in the batch, rows that were new, rows whose status changed."""

    seen: int
    new: int
    changed: int


def upsert_shipments(
    wh: Warehouse, conn: Any, shipments: pa.Table, items: pa.Table, run_id: str
) -> UpsertCounts:
    """Upsert shipments by ``shipment_id`` (newest ``updated_at`` wins) and replace their items."""
    ensure_tables(wh, conn)
    if shipments.num_rows == 0:
        return UpsertCounts(0, 0, 0)
    stage = _stage(wh, conn, SHIPMENTS, SHIPMENT_COLUMNS, shipments)
    counts = _change_counts(wh, conn, stage, wh.table(SHIPMENTS), "shipment_id")
    _merge(wh, conn, stage, SHIPMENTS, SHIPMENT_COLUMNS, "shipment_id", "updated_at", run_id)
    _replace_children(wh, conn, stage, SHIPMENT_ITEMS, SHIPMENT_ITEM_COLUMNS, "shipment_id", items)
    _order_status_from_shipments(wh, conn, stage)
    return counts


def _order_status_from_shipments(wh: Warehouse, conn: Any, stage: str) -> None:
    """The staged POs' order status as US Direct sets it when it ships: ``shipped`` once every
    accepted unit has shipped, ``partially_shipped`` before (a cancelled order stays cancelled)."""
    fr, fl = wh.table(FR), wh.table(FR_LINES)
    sh, si = wh.table(SHIPMENTS), wh.table(SHIPMENT_ITEMS)
    wh.execute(
        conn,
        f"UPDATE {fr} AS f SET order_status = CASE WHEN q.shipped >= q.accepted "
        "THEN 'shipped' ELSE 'partially_shipped' END "
        "FROM (SELECT x.po_number, x.shipped, COALESCE(a.accepted, 0) AS accepted FROM "
        f"(SELECT s.po_number, SUM(i.quantity) AS shipped FROM {sh} s "
        f"JOIN {si} i ON i.shipment_id = s.shipment_id "
        f"WHERE s.po_number IN (SELECT po_number FROM {stage}) GROUP BY s.po_number) x "
        f"LEFT JOIN (SELECT po_number, SUM(quantity) AS accepted FROM {fl} "
        "WHERE line_status = 'accepted' GROUP BY po_number) a ON a.po_number = x.po_number) q "
        f"WHERE f.po_number = q.po_number AND f.status = '{SUBMITTED}' "
        "AND COALESCE(f.order_status, '') <> 'cancelled'",
    )


def record_order_status(wh: Warehouse, conn: Any, statuses: dict[str, str]) -> None:
    """Order statuses read from US Direct (straggler lookups) replace what the ledger had."""
    if not statuses:
        return
    items = sorted(statuses.items())
    values = ", ".join(["(CAST(%s AS TEXT), CAST(%s AS TEXT))"] * len(items))
    wh.execute(
        conn,
        f"UPDATE {wh.table(FR)} AS f SET order_status = v.st "
        f"FROM (VALUES {values}) AS v(po, st) WHERE f.po_number = v.po",
        [x for item in items for x in item],
    )


def _change_counts(wh: Warehouse, conn: Any, stage: str, target: str, key: str) -> UpsertCounts:
    row = wh.fetchall(
        conn,
        f"SELECT count(DISTINCT s.{key}), "
        f"count(DISTINCT CASE WHEN t.{key} IS NULL THEN s.{key} END), "
        f"count(DISTINCT CASE WHEN t.{key} IS NOT NULL AND t.status IS DISTINCT FROM s.status "
        f"THEN s.{key} END) FROM {stage} s LEFT JOIN {target} t ON t.{key} = s.{key}",
    )[0]
    return UpsertCounts(int(row[0]), int(row[1]), int(row[2]))


def _merge(
    wh: Warehouse, conn: Any, stage: str, name: str, cols: Columns, key: str, newest: str | None, run_id: str
) -> None:
    names = _names(cols)
    now = _now()
    order = f"{key}, {newest} DESC NULLS LAST" if newest else key
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in names if c != key)
    guard = f" WHERE {name}.{newest} IS NULL OR EXCLUDED.{newest} >= {name}.{newest}" if newest else ""
    wh.execute(
        conn,
        f"INSERT INTO {wh.table(name)} AS {name} ({', '.join(names)}, first_seen_at, last_seen_at, run_id) "
        f"SELECT DISTINCT ON ({key}) {', '.join(names)}, CAST(%s AS TIMESTAMPTZ), CAST(%s AS TIMESTAMPTZ), "
        f"CAST(%s AS TEXT) FROM {stage} ORDER BY {order} "
        f"ON CONFLICT ({key}) DO UPDATE SET {updates}, last_seen_at = EXCLUDED.last_seen_at, "
        f"run_id = EXCLUDED.run_id{guard}",
        (now, now, run_id),
    )


def _replace_children(
    wh: Warehouse, conn: Any, parent_stage: str, name: str, cols: Columns, key: str, data: pa.Table
) -> None:
    """Children of every staged parent are replaced by this batch's (the parent is the unit)."""
    child_stage = _stage(wh, conn, name, cols, data)
    names = ", ".join(_names(cols))
    t = wh.table(name)
    wh.execute(conn, f"DELETE FROM {t} WHERE {key} IN (SELECT {key} FROM {parent_stage})")
    wh.execute(
        conn,
        f"INSERT INTO {t} ({names}) SELECT DISTINCT ON ({key}, line_number) {names} FROM {child_stage} "
        f"ORDER BY {key}, line_number",
    )


@dataclass(frozen=True)
class _Delivered:
    """Where a kind of record delivered to the platform lives in the warehouse."""

    table: str
    key: str
    id_col: str
    columns: Columns
    child: str
    child_columns: Columns


_DELIVERED = {
    "shipments": _Delivered(
        SHIPMENTS,
        "shipment_id",
        "platform_shipment_id",
        SHIPMENT_COLUMNS,
        SHIPMENT_ITEMS,
        SHIPMENT_ITEM_COLUMNS,
    ),
    "invoices": _Delivered(
        INVOICES,
        "invoice_number",
        "platform_invoice_id",
        INVOICE_COLUMNS,
        INVOICE_LINES,
        INVOICE_LINE_COLUMNS,
    ),
}


def platform_state(wh: Warehouse, conn: Any, kind: str, keys: Sequence[str]) -> dict[str, tuple]:
    """``key -> (platform id, platform status)`` of the shipments/invoices already delivered."""
    d = _DELIVERED[kind]
    ensure_tables(wh, conn)
    out: dict[str, tuple] = {}
    for start in range(0, len(keys), 500):
        chunk = list(keys[start : start + 500])
        marks = ", ".join(["%s"] * len(chunk))
        for k, pid, status in wh.fetchall(
            conn,
            f"SELECT {d.key}, {d.id_col}, platform_status FROM {wh.table(d.table)} "
            f"WHERE {d.key} IN ({marks}) AND {d.id_col} IS NOT NULL",
            chunk,
        ):
            out[k] = (pid, status)
    return out


def failed_deliveries(
    wh: Warehouse, conn: Any, kind: str
) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """Shipments or invoices whose last platform delivery failed, with their children, so the
    next delivery tries them again even when US Direct reports no change for them."""
    d = _DELIVERED[kind]
    name, key, cols, child, child_cols = d.table, d.key, d.columns, d.child, d.child_columns
    ensure_tables(wh, conn)
    names, child_names = _names(cols), _names(child_cols)
    failed = f"SELECT {key} FROM {wh.table(name)} WHERE platform_error IS NOT NULL"
    parents = [
        dict(zip(names, row, strict=True))
        for row in wh.fetchall(
            conn, f"SELECT {', '.join(names)} FROM {wh.table(name)} WHERE {key} IN ({failed})"
        )
    ]
    children: dict[str, list[dict[str, Any]]] = {}
    for row in wh.fetchall(
        conn,
        f"SELECT {', '.join(child_names)} FROM {wh.table(child)} WHERE {key} IN ({failed}) "
        f"ORDER BY {key}, line_number",
    ):
        item = dict(zip(child_names, row, strict=True))
        children.setdefault(item[key], []).append(item)
    return parents, children


def record_platform_delivery(
    wh: Warehouse, conn: Any, kind: str, rows: Sequence[tuple[str, int | None, str | None, str | None]]
) -> None:
    """Remember what the platform holds: ``(key, platform id, platform status, error)`` per row."""
    d = _DELIVERED[kind]
    name, key, id_col = d.table, d.key, d.id_col
    if not rows:
        return
    values = ", ".join(
        ["(CAST(%s AS TEXT), CAST(%s AS BIGINT), CAST(%s AS TEXT), CAST(%s AS TEXT))"] * len(rows)
    )
    wh.execute(
        conn,
        f"UPDATE {wh.table(name)} AS t SET {id_col} = COALESCE(v.pid, t.{id_col}), "
        "platform_status = COALESCE(v.st, t.platform_status), platform_error = v.err "
        f"FROM (VALUES {values}) AS v(k, pid, st, err) WHERE t.{key} = v.k",
        [x for row in rows for x in row],
    )


def open_pos_not_fully_shipped(wh: Warehouse, conn: Any, older_than: dt.datetime) -> list[str]:
    """Submitted POs sent before ``older_than`` with fewer units shipped than accepted (none at all
    included) that US Direct has not cancelled: the straggler lookups of Get Shipments."""
    ensure_tables(wh, conn)
    fl, sh, si = wh.table(FR_LINES), wh.table(SHIPMENTS), wh.table(SHIPMENT_ITEMS)
    return [
        r[0]
        for r in wh.fetchall(
            conn,
            f"SELECT f.po_number FROM {wh.table(FR)} f "
            f"LEFT JOIN (SELECT po_number, SUM(quantity) AS accepted FROM {fl} "
            "WHERE line_status = 'accepted' GROUP BY po_number) a ON a.po_number = f.po_number "
            f"LEFT JOIN (SELECT s.po_number, SUM(i.quantity) AS shipped FROM {sh} s "
            f"JOIN {si} i ON i.shipment_id = s.shipment_id GROUP BY s.po_number) x "
            "ON x.po_number = f.po_number "
            "WHERE f.status = %s AND f.submitted_at < %s AND COALESCE(f.order_status, '') <> 'cancelled' "
            "AND (x.shipped IS NULL OR x.shipped < COALESCE(a.accepted, 0)) "
            "ORDER BY f.submitted_at, f.po_number",
            (SUBMITTED, older_than),
        )
    ]


# --- invoices ---------------------------------------------------------------------------------


def pos_awaiting_invoice(wh: Warehouse, conn: Any) -> list[tuple[str, dt.date | None]]:
    """Shipped POs with no paid (or credited) invoice yet, with the date of their first shipment."""
    ensure_tables(wh, conn)
    rows = wh.fetchall(
        conn,
        f"SELECT s.po_number, MIN(s.ship_date) FROM {wh.table(SHIPMENTS)} s "
        f"WHERE NOT EXISTS (SELECT 1 FROM {wh.table(INVOICES)} i WHERE i.po_number = s.po_number "
        "AND i.status IN ('Paid', 'Credited')) GROUP BY s.po_number ORDER BY s.po_number",
    )
    return [(r[0], r[1]) for r in rows]


def shipped_quantities(wh: Warehouse, conn: Any, po_numbers: Sequence[str]) -> dict[tuple[str, str], int]:
    """``(po_number, item_number) -> units shipped`` for the invoice quantity check."""
    ensure_tables(wh, conn)
    out: dict[tuple[str, str], int] = {}
    for start in range(0, len(po_numbers), 500):
        chunk = list(po_numbers[start : start + 500])
        marks = ", ".join(["%s"] * len(chunk))
        for po, item, qty in wh.fetchall(
            conn,
            f"SELECT s.po_number, i.item_number, SUM(i.quantity) FROM {wh.table(SHIPMENTS)} s "
            f"JOIN {wh.table(SHIPMENT_ITEMS)} i ON i.shipment_id = s.shipment_id "
            f"WHERE s.po_number IN ({marks}) GROUP BY s.po_number, i.item_number",
            chunk,
        ):
            out[(po, item)] = int(qty)
    return out


def upsert_invoices(
    wh: Warehouse, conn: Any, invoices: pa.Table, lines: pa.Table, run_id: str
) -> UpsertCounts:
    """Upsert invoices by ``invoice_number`` (status moves on in place) and replace their lines."""
    ensure_tables(wh, conn)
    if invoices.num_rows == 0:
        return UpsertCounts(0, 0, 0)
    stage = _stage(wh, conn, INVOICES, INVOICE_COLUMNS, invoices)
    counts = _change_counts(wh, conn, stage, wh.table(INVOICES), "invoice_number")
    _merge(wh, conn, stage, INVOICES, INVOICE_COLUMNS, "invoice_number", None, run_id)
    _replace_children(wh, conn, stage, INVOICE_LINES, INVOICE_LINE_COLUMNS, "invoice_number", lines)
    return counts


def record_invoice_checks(
    wh: Warehouse, conn: Any, checked: Sequence[str], problems: dict[str, str | None]
) -> None:
    """Note when each PO's invoice was last asked for and why it is a concern (e.g. overdue)."""
    if not checked:
        return
    now = _now()
    values = ", ".join(["(CAST(%s AS TEXT), CAST(%s AS TEXT))"] * len(checked))
    wh.execute(
        conn,
        f"UPDATE {wh.table(FR)} AS f SET invoice_checked_at = CAST(%s AS TIMESTAMPTZ), invoice_problem = v.p "
        f"FROM (VALUES {values}) AS v(po, p) WHERE f.po_number = v.po",
        [now, *[x for po in checked for x in (po, problems.get(po))]],
    )


# --- reconciliation ---------------------------------------------------------------------------


RECONCILIATION_SQL = Path(__file__).with_name("po_reconciliation.sql")
RECONCILIATION_COLUMNS = (
    "po_number",
    "fr_id",
    "supplier_order_id",
    "request_status",
    "order_status",
    "ordered_qty",
    "accepted_qty",
    "shipped_qty",
    "invoiced_qty",
    "shipments",
    "expected_cost",
    "invoiced_product_cost",
    "invoiced_shipping",
    "invoiced_fees",
    "invoiced_tax",
    "invoiced_total",
    "invoice_status",
    "state",
    "fulfillment_state",
    "inserted_at",
    "submitted_at",
    "age_days",
    "problem",
)


def _reconciliation_sql(wh: Warehouse) -> str:
    """One row per PO: quantities along the way, money expected vs invoiced, state and problems."""
    body = "\n".join(
        line
        for line in RECONCILIATION_SQL.read_text(encoding="utf-8").splitlines()
        if not line.startswith("--")
    )
    return body.format(
        fr=wh.table(FR),
        fl=wh.table(FR_LINES),
        sh=wh.table(SHIPMENTS),
        si=wh.table(SHIPMENT_ITEMS),
        inv=wh.table(INVOICES),
        il=wh.table(INVOICE_LINES),
        submitted=SUBMITTED,
        submitting=SUBMITTING,
        pending=PENDING,
        needs_attention=NEEDS_ATTENTION,
    )


def reconciliation_counts(wh: Warehouse) -> dict[str, int]:
    """PO count per reconciliation state plus ``with_problem`` (what the demo summary prints)."""
    with wh.connect() as conn:
        ensure_tables(wh, conn)
        rows = wh.fetchall(
            conn,
            f"SELECT state, COUNT(*), SUM(CASE WHEN problem IS NULL THEN 0 ELSE 1 END) "
            f"FROM {wh.table(RECONCILIATION)} GROUP BY state ORDER BY state",
        )
    counts = {state: int(n) for state, n, _ in rows}
    counts["with_problem"] = sum(int(p or 0) for _, _, p in rows)
    return counts

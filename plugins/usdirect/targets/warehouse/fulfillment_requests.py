"""``fulfillment_requests`` as Send Orders' submission ledger.

A PO is marked ``submitting`` (with its attempt count) in its own committed transaction *before*
the order is sent, so a killed worker leaves a trace that the next run resolves by asking US
Direct instead of sending again. Requests are stored platform-shaped enough that one mapping
template serves requests read from the platform and from the warehouse.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pyarrow as pa

from usdirect.domain.fulfillment import FULFILLMENT_REQUEST, FULFILLMENT_REQUEST_LINE, LedgerState
from usdirect.targets.warehouse.order_tables import FR, FR_LINES, ensure_tables
from usdirect.targets.warehouse.sql import Warehouse, stage

# What an import writes: the request as the platform has it, and a fresh ledger.
_IMPORT_COLUMNS = (*FULFILLMENT_REQUEST.names[:19], "attempts", "updated_at")
_IMPORT_LINE_COLUMNS = FULFILLMENT_REQUEST_LINE.names[:7]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


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
                "status": LedgerState.PENDING.value,
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
    return (
        pa.Table.from_pylist(heads, schema=FULFILLMENT_REQUEST.arrow_schema(_IMPORT_COLUMNS)),
        pa.Table.from_pylist(lines, schema=FULFILLMENT_REQUEST_LINE.arrow_schema(_IMPORT_LINE_COLUMNS)),
    )


def _timestamp(value: Any) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value))


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
    staged = stage(wh, conn, FULFILLMENT_REQUEST, _IMPORT_COLUMNS, heads)
    staged_lines = stage(wh, conn, FULFILLMENT_REQUEST_LINE, _IMPORT_LINE_COLUMNS, lines)
    t, tl = wh.table(FR), wh.table(FR_LINES)
    names = ", ".join(c for c in FULFILLMENT_REQUEST.names if c in _IMPORT_COLUMNS)
    line_names = ", ".join(_IMPORT_LINE_COLUMNS)
    new = wh.fetchall(
        conn,
        f"SELECT count(DISTINCT s.po_number) FROM {staged} s "
        f"WHERE NOT EXISTS (SELECT 1 FROM {t} f WHERE f.po_number = s.po_number)",
    )[0][0]
    wh.execute(
        conn,
        f"INSERT INTO {tl} ({line_names}) "
        f"SELECT DISTINCT ON (po_number, line_number) {line_names} FROM {staged_lines} sl "
        f"WHERE NOT EXISTS (SELECT 1 FROM {t} f WHERE f.po_number = sl.po_number) "
        "ORDER BY po_number, line_number "
        "ON CONFLICT (po_number, line_number) DO NOTHING",
    )
    wh.execute(
        conn,
        f"INSERT INTO {t} ({names}) SELECT DISTINCT ON (po_number) {names} FROM {staged} "
        "ORDER BY po_number ON CONFLICT (po_number) DO NOTHING",
    )
    return int(new)


@dataclass(frozen=True)
class LedgerEntry:
    """A fulfillment request as the ledger knows it, plus its platform-shaped JSON."""

    po_number: str
    status: LedgerState
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
    cols = FULFILLMENT_REQUEST.names
    if po_numbers:
        marks = wh.marks(len(po_numbers))
        where, params = (
            f"po_number IN ({marks}) AND status <> '{LedgerState.SUBMITTED}'",
            list(po_numbers),
        )
    else:
        where, params = f"status IN ('{LedgerState.PENDING}', '{LedgerState.SUBMITTING}')", []
    sql = f"SELECT {', '.join(cols)} FROM {t} WHERE {where} ORDER BY inserted_at, po_number"
    if limit:
        sql += f" LIMIT {int(limit)}"
    heads = [dict(zip(cols, row, strict=True)) for row in wh.fetchall(conn, sql, params)]
    if not heads:
        return []
    marks = wh.marks(len(heads))
    line_cols = _IMPORT_LINE_COLUMNS
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
            h["po_number"],
            LedgerState(h["status"]),
            int(h["attempts"]),
            _fr_json(h, by_po.get(h["po_number"], [])),
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
    status: LedgerState
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
        marks = wh.marks(len(chunk))
        for row in wh.fetchall(
            conn,
            f"SELECT po_number, status, attempts, supplier_order_id, order_status, last_error "
            f"FROM {wh.table(FR)} WHERE po_number IN ({marks})",
            chunk,
        ):
            out[row[0]] = LedgerRow(row[0], LedgerState(row[1]), int(row[2]), row[3], row[4], row[5])
    return out


def mark_submitting(wh: Warehouse, po_number: str) -> int:
    """Durably record an attempt *before* sending it; returns the attempt count now stored."""
    p = wh.placeholder
    with wh.connect() as conn:
        rows = wh.fetchall(
            conn,
            f"UPDATE {wh.table(FR)} SET status = {p}, attempts = attempts + 1, last_attempt_at = {p}, "
            f"updated_at = {p} WHERE po_number = {p} RETURNING attempts",
            (LedgerState.SUBMITTING.value, _now(), _now(), po_number),
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
    p = wh.placeholder
    with wh.connect() as conn:
        rows = wh.fetchall(
            conn,
            f"UPDATE {wh.table(FR)} SET status = {p}, attempts = attempts + 1, last_attempt_at = {p}, "
            f"updated_at = {p} WHERE po_number = {p} AND attempts = {p} AND status <> {p} RETURNING attempts",
            (
                LedgerState.SUBMITTING.value,
                _now(),
                _now(),
                po_number,
                attempts_seen,
                LedgerState.SUBMITTED.value,
            ),
        )
    return int(rows[0][0]) if rows else None


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
    p = wh.placeholder
    with wh.connect() as conn:
        wh.execute(
            conn,
            f"UPDATE {wh.table(FR)} SET status = {p}, supplier_order_id = {p}, order_status = {p}, "
            f"submitted_at = COALESCE(submitted_at, {p}), last_error = {p}, updated_at = {p} "
            f"WHERE po_number = {p}",
            (
                LedgerState.SUBMITTED.value,
                supplier_order_id,
                order_status,
                submitted_at,
                note,
                _now(),
                po_number,
            ),
        )
        if lines:
            values = ", ".join([f"(CAST({p} AS INTEGER), CAST({p} AS TEXT), CAST({p} AS TEXT))"] * len(lines))
            params: list[Any] = [x for line in lines for x in line]
            wh.execute(
                conn,
                f"UPDATE {wh.table(FR_LINES)} AS l SET line_status = v.s, line_reason = v.r "
                f"FROM (VALUES {values}) AS v(n, s, r) WHERE l.po_number = {p} AND l.line_number = v.n",
                [*params, po_number],
            )


def record_problem(wh: Warehouse, po_number: str, status: LedgerState, message: str) -> None:
    """Set a request's state with a message: ``needs_attention``, or ``pending`` / ``submitting``
    with the last error when the run could not finish it."""
    p = wh.placeholder
    with wh.connect() as conn:
        wh.execute(
            conn,
            f"UPDATE {wh.table(FR)} SET status = {p}, last_error = {p}, updated_at = {p} "
            f"WHERE po_number = {p}",
            (status.value, message, _now(), po_number),
        )


def record_order_status(wh: Warehouse, conn: Any, statuses: dict[str, str]) -> None:
    """Order statuses read from US Direct (straggler lookups) replace what the ledger had."""
    p = wh.placeholder
    if not statuses:
        return
    items = sorted(statuses.items())
    values = ", ".join([f"(CAST({p} AS TEXT), CAST({p} AS TEXT))"] * len(items))
    wh.execute(
        conn,
        f"UPDATE {wh.table(FR)} AS f SET order_status = v.st "
        f"FROM (VALUES {values}) AS v(po, st) WHERE f.po_number = v.po",
        [x for item in items for x in item],
    )

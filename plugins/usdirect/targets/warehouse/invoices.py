"""Get Invoice's warehouse side: the POs awaiting an invoice, the units shipped that an invoice is
checked against, invoices upserted set-based, and when each PO's invoice was last asked for."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from usdirect.domain.invoices import INVOICE, INVOICE_LINE
from usdirect.targets.warehouse.checks import check_invoices
from usdirect.targets.warehouse.order_tables import (
    FR,
    INVOICE_LINES,
    INVOICES,
    SHIPMENT_ITEMS,
    SHIPMENTS,
    ensure_tables,
)
from usdirect.targets.warehouse.sql import (
    UpsertCounts,
    Warehouse,
    change_counts,
    merge_seen,
    replace_children,
    stage,
)


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
        marks = wh.marks(len(chunk))
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
    staged = stage(wh, conn, INVOICE, INVOICE.batch, invoices)
    counts = change_counts(wh, conn, staged, INVOICE)
    merge_seen(wh, conn, staged, INVOICE, INVOICE.batch, None, run_id)
    replace_children(wh, conn, staged, INVOICE_LINE, lines)
    check_invoices(wh, conn, INVOICES, INVOICE_LINES, staged)
    return counts


def record_invoice_checks(
    wh: Warehouse, conn: Any, checked: Sequence[str], problems: Mapping[str, str | None]
) -> None:
    """Note when each PO's invoice was last asked for and why it is a concern (e.g. overdue)."""
    p = wh.placeholder
    if not checked:
        return
    now = dt.datetime.now(dt.UTC)
    values = ", ".join([f"(CAST({p} AS TEXT), CAST({p} AS TEXT))"] * len(checked))
    wh.execute(
        conn,
        f"UPDATE {wh.table(FR)} AS f SET invoice_checked_at = CAST({p} AS TIMESTAMPTZ), "
        "invoice_problem = v.p "
        f"FROM (VALUES {values}) AS v(po, p) WHERE f.po_number = v.po",
        [now, *[x for po in checked for x in (po, problems.get(po))]],
    )

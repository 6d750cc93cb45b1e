"""Get Shipments' warehouse side: shipments upserted set-based, the POs' order status they imply,
and the open POs whose shipments are overdue (the straggler lookups)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa

from usdirect.domain.fulfillment import LedgerState, LineStatus, OrderStatus
from usdirect.domain.shipments import SHIPMENT, SHIPMENT_ITEM
from usdirect.targets.warehouse.checks import SHIPMENT_CHECKS, check_batch
from usdirect.targets.warehouse.order_tables import FR, FR_LINES, SHIPMENT_ITEMS, SHIPMENTS, ensure_tables
from usdirect.targets.warehouse.sql import (
    UpsertCounts,
    Warehouse,
    change_counts,
    merge_seen,
    replace_children,
    stage,
)


def upsert_shipments(
    wh: Warehouse, conn: Any, shipments: pa.Table, items: pa.Table, run_id: str
) -> UpsertCounts:
    """Upsert shipments by ``shipment_id`` (newest ``updated_at`` wins) and replace their items."""
    ensure_tables(wh, conn)
    if shipments.num_rows == 0:
        return UpsertCounts(0, 0, 0)
    staged = stage(wh, conn, SHIPMENT, SHIPMENT.batch, shipments)
    counts = change_counts(wh, conn, staged, SHIPMENT)
    merge_seen(wh, conn, staged, SHIPMENT, SHIPMENT.batch, "updated_at", run_id)
    replace_children(wh, conn, staged, SHIPMENT_ITEM, items)
    check_batch(wh, conn, SHIPMENTS, "shipment_id", staged, SHIPMENT_CHECKS)
    _order_status_from_shipments(wh, conn, staged)
    return counts


def _order_status_from_shipments(wh: Warehouse, conn: Any, stage: str) -> None:
    """The staged POs' order status as US Direct sets it when it ships: ``shipped`` once every
    accepted unit has shipped, ``partially_shipped`` before (a cancelled order stays cancelled)."""
    fr, fl = wh.table(FR), wh.table(FR_LINES)
    sh, si = wh.table(SHIPMENTS), wh.table(SHIPMENT_ITEMS)
    wh.execute(
        conn,
        f"UPDATE {fr} AS f SET order_status = CASE WHEN q.shipped >= q.accepted "
        f"THEN '{OrderStatus.SHIPPED}' ELSE '{OrderStatus.PARTIALLY_SHIPPED}' END "
        "FROM (SELECT x.po_number, x.shipped, COALESCE(a.accepted, 0) AS accepted FROM "
        f"(SELECT s.po_number, SUM(i.quantity) AS shipped FROM {sh} s "
        f"JOIN {si} i ON i.shipment_id = s.shipment_id "
        f"WHERE s.po_number IN (SELECT po_number FROM {stage}) GROUP BY s.po_number) x "
        f"LEFT JOIN (SELECT po_number, SUM(quantity) AS accepted FROM {fl} "
        f"WHERE line_status = '{LineStatus.ACCEPTED}' GROUP BY po_number) a ON a.po_number = x.po_number) q "
        f"WHERE f.po_number = q.po_number AND f.status = '{LedgerState.SUBMITTED}' "
        f"AND COALESCE(f.order_status, '') <> '{OrderStatus.CANCELLED}'",
    )


def open_pos_not_fully_shipped(wh: Warehouse, conn: Any, older_than: dt.datetime) -> list[str]:
    """Submitted POs sent before ``older_than`` with fewer units shipped than accepted (none at all
    included) that US Direct has not cancelled: the straggler lookups of Get Shipments."""
    p = wh.placeholder
    ensure_tables(wh, conn)
    fl, sh, si = wh.table(FR_LINES), wh.table(SHIPMENTS), wh.table(SHIPMENT_ITEMS)
    return [
        r[0]
        for r in wh.fetchall(
            conn,
            f"SELECT f.po_number FROM {wh.table(FR)} f "
            f"LEFT JOIN (SELECT po_number, SUM(quantity) AS accepted FROM {fl} "
            f"WHERE line_status = '{LineStatus.ACCEPTED}' GROUP BY po_number) a ON a.po_number = f.po_number "
            f"LEFT JOIN (SELECT s.po_number, SUM(i.quantity) AS shipped FROM {sh} s "
            f"JOIN {si} i ON i.shipment_id = s.shipment_id GROUP BY s.po_number) x "
            "ON x.po_number = f.po_number "
            f"WHERE f.status = {p} AND f.submitted_at < {p} "
            f"AND COALESCE(f.order_status, '') <> '{OrderStatus.CANCELLED}' "
            "AND (x.shipped IS NULL OR x.shipped < COALESCE(a.accepted, 0)) "
            "ORDER BY f.submitted_at, f.po_number",
            (LedgerState.SUBMITTED.value, older_than),
        )
    ]

"""The order, shipment and invoice tables (DuckDB and Postgres alike) and the reconciliation view.

Each table is a record of ``usdirect.domain`` created from its declaration; the view's SQL is
``po_reconciliation.sql`` next to this module. Only portable SQL is used (``ON CONFLICT``,
``DISTINCT ON``, ``UPDATE ... FROM``, ``CONCAT_WS``), valid on both engines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from usdirect.domain.fulfillment import FULFILLMENT_REQUEST, FULFILLMENT_REQUEST_LINE, LedgerState
from usdirect.domain.invoices import INVOICE, INVOICE_LINE
from usdirect.domain.shipments import SHIPMENT, SHIPMENT_ITEM
from usdirect.targets.warehouse.sql import Warehouse

ORDER_RECORDS = (
    FULFILLMENT_REQUEST,
    FULFILLMENT_REQUEST_LINE,
    SHIPMENT,
    SHIPMENT_ITEM,
    INVOICE,
    INVOICE_LINE,
)
FR = FULFILLMENT_REQUEST.stored_as
FR_LINES = FULFILLMENT_REQUEST_LINE.stored_as
SHIPMENTS = SHIPMENT.stored_as
SHIPMENT_ITEMS = SHIPMENT_ITEM.stored_as
INVOICES = INVOICE.stored_as
INVOICE_LINES = INVOICE_LINE.stored_as
RECONCILIATION = "usdirect_po_reconciliation"
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


def ensure_tables(wh: Warehouse, conn: Any) -> None:
    """Create the order, shipment and invoice tables and the reconciliation view if missing."""
    p = wh.placeholder
    for record in ORDER_RECORDS:
        wh.execute(conn, record.create_sql(wh.table(record.stored_as)))
    # Created once, not replaced on every call: concurrent CREATE OR REPLACE VIEW statements
    # from parallel tasks conflict on Postgres. A view with other columns (an earlier version of
    # the package) is dropped and created anew.
    columns = [
        r[0]
        for r in wh.fetchall(
            conn,
            "SELECT column_name FROM information_schema.columns "
            f"WHERE table_name = {p} AND table_schema = COALESCE({p}, current_schema()) "
            "ORDER BY ordinal_position",
            (RECONCILIATION, wh.schema),
        )
    ]
    if tuple(columns) != RECONCILIATION_COLUMNS:
        if columns:
            wh.execute(conn, f"DROP VIEW IF EXISTS {wh.table(RECONCILIATION)}")
        wh.execute(conn, f"CREATE VIEW {wh.table(RECONCILIATION)} AS {_reconciliation_sql(wh)}")


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
        submitted=LedgerState.SUBMITTED,
        submitting=LedgerState.SUBMITTING,
        pending=LedgerState.PENDING,
        needs_attention=LedgerState.NEEDS_ATTENTION,
    )

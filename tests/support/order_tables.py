"""Arrow tables as the shipments and invoices steps hand them to the warehouse, and the
reconciliation view read back, for the orders warehouse tests."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa

from usdirect.targets.warehouse import order_tables as ot
from usdirect.targets.warehouse.sql import Warehouse

D = Decimal


def shipments_table(rows: list[dict]) -> pa.Table:
    schema = pa.schema(
        [
            ("shipment_id", pa.string()),
            ("po_number", pa.string()),
            ("carrier", pa.string()),
            ("shipping_code", pa.string()),
            ("method", pa.string()),
            ("tracking_number", pa.string()),
            ("status", pa.string()),
            ("supplier_status", pa.string()),
            ("ship_date", pa.date32()),
            ("updated_at", pa.timestamp("us", tz="UTC")),
        ]
    )
    base = {
        "carrier": "UPS",
        "shipping_code": "UPS-GND",
        "method": "Ground",
        "ship_date": dt.date(2026, 11, 21),
    }
    return pa.Table.from_pylist([{**base, **r} for r in rows], schema=schema)


def shipment_items_table(rows: list[tuple[str, int, str, int]]) -> pa.Table:
    return pa.table(
        {
            "shipment_id": [r[0] for r in rows],
            "line_number": pa.array([r[1] for r in rows], pa.int64()),
            "item_number": [r[2] for r in rows],
            "sku": [f"USD-{r[2]}" for r in rows],
            "quantity": pa.array([r[3] for r in rows], pa.int64()),
        }
    )


def invoice_table(number: str, po: str, status: str, total: str, problem: str | None = None) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "invoice_number": number,
                "po_number": po,
                "invoice_date": dt.date(2026, 11, 22),
                "status": status,
                "supplier_status": status.lower(),
                "currency": "USD",
                "total": D(total),
                "shipping": D("5.95"),
                "fees": D("0.00"),
                "tax": D("0.00"),
                "check_problem": problem,
            }
        ],
        schema=pa.schema(
            [
                ("invoice_number", pa.string()),
                ("po_number", pa.string()),
                ("invoice_date", pa.date32()),
                ("status", pa.string()),
                ("supplier_status", pa.string()),
                ("currency", pa.string()),
                ("total", pa.decimal128(12, 2)),
                ("shipping", pa.decimal128(12, 2)),
                ("fees", pa.decimal128(12, 2)),
                ("tax", pa.decimal128(12, 2)),
                ("check_problem", pa.string()),
            ]
        ),
    )


def invoice_lines_table(number: str, lines: list[tuple[int, str, int, str]]) -> pa.Table:
    return pa.table(
        {
            "invoice_number": [number] * len(lines),
            "line_number": pa.array([n for n, *_ in lines], pa.int64()),
            "item_number": [i for _, i, _, _ in lines],
            "sku": [f"USD-{i}" for _, i, _, _ in lines],
            "quantity": pa.array([q for *_, q, _ in lines], pa.int64()),
            "unit_cost": pa.array([D(c) for *_, c in lines], pa.decimal128(12, 2)),
            "amount": pa.array([D(c) * q for *_, q, c in lines], pa.decimal128(12, 2)),
        }
    )


def reconciliation_rows(wh: Warehouse) -> dict[str, dict]:
    with wh.connect() as conn:
        cols = [
            "po_number",
            "ordered_qty",
            "accepted_qty",
            "shipped_qty",
            "invoiced_qty",
            "expected_cost",
            "invoiced_total",
            "state",
            "fulfillment_state",
            "problem",
        ]
        rows = wh.fetchall(conn, f"SELECT {', '.join(cols)} FROM {wh.table(ot.RECONCILIATION)}")
    return {r[0]: dict(zip(cols, r, strict=True)) for r in rows}

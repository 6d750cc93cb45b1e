"""What the platform holds of the shipments and invoices delivered to it (the delivery memory):
their platform ids and statuses, and the deliveries that failed and are tried again."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from usdirect.domain.invoices import INVOICE, INVOICE_LINE
from usdirect.domain.records import Record
from usdirect.domain.shipments import SHIPMENT, SHIPMENT_ITEM
from usdirect.targets.warehouse.order_tables import ensure_tables
from usdirect.targets.warehouse.sql import Warehouse


@dataclass(frozen=True)
class _Delivered:
    """Where a kind of record delivered to the platform lives in the warehouse."""

    parent: Record
    id_col: str
    child: Record

    @property
    def key(self) -> str:
        return self.parent.key[0]


_DELIVERED = {
    "shipments": _Delivered(SHIPMENT, "platform_shipment_id", SHIPMENT_ITEM),
    "invoices": _Delivered(INVOICE, "platform_invoice_id", INVOICE_LINE),
}


def platform_state(
    wh: Warehouse, conn: Any, kind: str, keys: Sequence[str]
) -> dict[str, tuple[int | None, str | None]]:
    """``key -> (platform id, platform status)`` of the shipments/invoices already delivered."""
    d = _DELIVERED[kind]
    ensure_tables(wh, conn)
    out: dict[str, tuple[int | None, str | None]] = {}
    for start in range(0, len(keys), 500):
        chunk = list(keys[start : start + 500])
        marks = wh.marks(len(chunk))
        for k, pid, status in wh.fetchall(
            conn,
            f"SELECT {d.key}, {d.id_col}, platform_status FROM {wh.table(d.parent.stored_as)} "
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
    name, key, child = d.parent.stored_as, d.key, d.child.stored_as
    ensure_tables(wh, conn)
    names, child_names = d.parent.batch, d.child.names
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
    p = wh.placeholder
    d = _DELIVERED[kind]
    name, key, id_col = d.parent.stored_as, d.key, d.id_col
    if not rows:
        return
    values = ", ".join(
        [f"(CAST({p} AS TEXT), CAST({p} AS BIGINT), CAST({p} AS TEXT), CAST({p} AS TEXT))"] * len(rows)
    )
    wh.execute(
        conn,
        f"UPDATE {wh.table(name)} AS t SET {id_col} = COALESCE(v.pid, t.{id_col}), "
        "platform_status = COALESCE(v.st, t.platform_status), platform_error = v.err "
        f"FROM (VALUES {values}) AS v(k, pid, st, err) WHERE t.{key} = v.k",
        [x for row in rows for x in row],
    )

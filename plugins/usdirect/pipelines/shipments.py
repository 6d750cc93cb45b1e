"""Get Shipments: changed shipments of the run's window (plus straggler lookups), mapped once,
then upserted into the warehouse and/or delivered to the platform.

The fetch writes Parquet to the run's staging folder so that each target's task reads the same
batch, and a re-run of one target does not fetch again. Upserts are keyed on ``shipment_id``,
so overlapping windows and re-runs change nothing that has not changed at US Direct.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from usdirect.domain.batch import Batch
from usdirect.domain.shipments import SHIPMENT, SHIPMENT_ITEM, ShipmentClient
from usdirect.targets.warehouse import deliveries as wh_deliveries
from usdirect.targets.warehouse import shipments as wh_shipments
from usdirect.targets.warehouse.sql import UpsertCounts

log = logging.getLogger(__name__)

SHIPMENT_FIELDS = list(SHIPMENT.batch)
ITEM_FIELDS = list(SHIPMENT_ITEM.names)


def map_batch(
    template: Any, records: list[dict[str, Any]], fields: list[str], child_fields: list[str]
) -> Batch:
    """Map JSON records with the template; canonical columns only, in the warehouse's order."""
    if not records:
        from usdirect.mapping import REJECT_SCHEMA

        return Batch(
            conform(template.schema.empty_table(), fields),
            conform(template.child_schema.empty_table(), child_fields),
            REJECT_SCHEMA.empty_table(),
        )
    result = template.map_records(records)
    children = next(iter(result.children.values()))
    return Batch(conform(result.mapped, fields), conform(children, child_fields), result.rejects)


def conform(table: pa.Table, fields: list[str]) -> pa.Table:
    """Exactly ``fields`` in order; a field the template does not map becomes an empty column."""
    return pa.table(
        {
            f: table.column(f) if f in table.column_names else pa.nulls(table.num_rows, pa.string())
            for f in fields
        }
    )


@dataclass(frozen=True)
class FetchCounts:
    """What a fetch found besides the batch: its counts and the order statuses the lookups read."""

    changed: int  # shipments returned by the incremental query
    stragglers_checked: int  # POs looked up one by one
    stragglers_found: int  # shipments only the per-PO lookups found
    order_status: dict[str, str] = field(default_factory=dict)  # PO -> status at US Direct (lookups)


def fetch_shipments(
    client: ShipmentClient,
    template: Any,
    updated_since: dt.datetime,
    straggler_pos: Sequence[str] = (),
) -> tuple[Batch, FetchCounts]:
    """Shipments changed since ``updated_since``, plus the shipments and current order status of
    each straggler PO (an order on hold may have shipped since, an open one may be cancelled)."""
    records: dict[str, dict[str, Any]] = {}
    for page in client.iter_shipments(updated_since):
        for shipment in page:
            records[shipment["shipment_id"]] = shipment
    changed = len(records)
    found = 0
    statuses: dict[str, str] = {}
    for po in straggler_pos:
        order = client.get_order(po)
        if order and order.get("status"):
            statuses[po] = str(order["status"])
        for shipment in client.get_order_shipments(po):
            if shipment["shipment_id"] not in records:
                records[shipment["shipment_id"]] = shipment
                found += 1
    batch = map_batch(template, list(records.values()), SHIPMENT_FIELDS, ITEM_FIELDS)
    return batch, FetchCounts(changed, len(straggler_pos), found, statuses)


def straggler_pos(wh: Any, as_of: dt.datetime, age_hours: int) -> list[str]:
    """Submitted POs not fully shipped ``age_hours`` after submission, as of the run's time (its
    window end, so a backfill or a clock that is not the wall clock judges age the same way)."""
    with wh.connect() as conn:
        return wh_shipments.open_pos_not_fully_shipped(wh, conn, as_of - dt.timedelta(hours=age_hours))


def load_warehouse(
    wh: Any, batch: Batch, run_id: str, order_status: dict[str, str] | None = None
) -> UpsertCounts:
    """Upsert the batch, bring the POs' order status up to date and record rejects, in one transaction."""
    from usdirect.targets.warehouse.audit import write_rejects
    from usdirect.targets.warehouse.fulfillment_requests import record_order_status

    with wh.connect() as conn:
        counts = wh_shipments.upsert_shipments(wh, conn, batch.parents, batch.children, run_id)
        record_order_status(wh, conn, order_status or {})
        write_rejects(wh, conn, run_id, batch.rejects)
    return counts


def deliver_platform(hook: Any, batch: Batch, wh: Any | None) -> dict[str, Any]:
    """POST new shipments, PATCH changed statuses; errors (e.g. unknown FR) are kept with reasons.

    With a warehouse, shipments whose earlier delivery failed are delivered again as well.
    """
    from usdirect.targets.platform.orders import deliver_shipments

    return deliver_with_memory(hook, batch, wh, "shipments", "shipment_id", deliver_shipments)


def deliver_with_memory(
    hook: Any, batch: Batch, wh: Any | None, kind: str, key: str, deliver: Any
) -> dict[str, Any]:
    """Deliver ``batch`` (plus earlier failures) using and updating what the warehouse remembers."""
    parents = batch.parents.to_pylist()
    children = batch.children_by(key)
    known: dict[str, tuple[int | None, str | None]] | None = None
    if wh is not None:
        with wh.connect() as conn:
            retry, retry_children = wh_deliveries.failed_deliveries(wh, conn, kind)
            seen = {p[key] for p in parents}
            parents += [p for p in retry if p[key] not in seen]
            children = retry_children | children
            known = wh_deliveries.platform_state(wh, conn, kind, [p[key] for p in parents])
    deliveries = deliver(hook, parents, children, known)
    if wh is not None:
        with wh.connect() as conn:
            wh_deliveries.record_platform_delivery(
                wh, conn, kind, [(d.key, d.platform_id, d.status, d.error) for d in deliveries]
            )
    return summarize(deliveries)


def summarize(deliveries: Sequence[Any]) -> dict[str, Any]:
    counts: dict[str, Any] = {}
    for d in deliveries:
        counts[d.action] = counts.get(d.action, 0) + 1
    errors = [f"{d.key}: {d.error}" for d in deliveries if d.error]
    for line in errors:
        log.error("platform delivery failed for %s", line)
    counts["errors"] = errors
    return counts

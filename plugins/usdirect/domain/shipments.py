"""The shipment record (``usdirect_shipments``) and its items (``usdirect_shipment_items``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any, Protocol

from usdirect.domain.records import DATE, INT32, STRING, TIMESTAMP, Field, Record, delivery_fields, mapped

SHIPMENT = Record(
    "shipment",
    "usdirect_shipments",
    (
        mapped("shipment_id", STRING, "US Direct's shipment id", required=True, nullable=False, key=True),
        mapped("po_number", STRING, "the purchase order it ships", required=True, nullable=False),
        mapped("carrier", STRING),
        mapped("shipping_code", STRING),
        mapped("method", STRING),
        mapped("tracking_number", STRING),
        mapped("status", STRING, "the platform's shipment status", required=True),
        mapped("supplier_status", STRING, "US Direct's own status word"),
        mapped("ship_date", DATE),
        mapped("updated_at", TIMESTAMP, "when US Direct last changed it (newest wins)"),
        *delivery_fields("platform_shipment_id"),
    ),
)

SHIPMENT_ITEM = Record(
    "shipment item",
    "usdirect_shipment_items",
    (
        Field("shipment_id", STRING, nullable=False, key=True, description="the parent shipment"),
        mapped("line_number", INT32, required=True, nullable=False, key=True),
        mapped("item_number", STRING, "US Direct item number", required=True),
        mapped("sku", STRING),
        mapped("quantity", INT32, "units shipped", required=True),
    ),
)


class ShipmentClient(Protocol):
    """The US Direct calls Get Shipments needs (``UsDirectHook`` provides them)."""

    def iter_shipments(
        self, updated_since: dt.datetime, limit: int = ...
    ) -> Iterable[list[dict[str, Any]]]: ...

    def get_order_shipments(self, po_number: str) -> list[dict[str, Any]]: ...

    def get_order(self, po_number: str) -> dict[str, Any] | None: ...

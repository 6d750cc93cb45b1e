"""Platform side of Send Orders, Get Shipments and Get Invoice (the Flxpoint-like API).

Every write here is safe to repeat: marking a request processed is idempotent, and shipments and
source invoices answer 409 with the existing id when they were delivered before, after which
only a status change is sent. Bodies follow docs/flxpoint-api.md.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from usdirect.domain.errors import PermanentError
from usdirect.domain.orders import OrderOutcome, OutcomeKind
from usdirect.hooks.errors import NotFoundError, UsDirectError

SOURCE_NAME = "US Direct"


class PlatformClient(Protocol):
    """The platform calls used here (``FlxpointHook`` provides them)."""

    def iter_fulfillment_requests(
        self, status: str = ..., source_name: str = ..., page_size: int = ...
    ) -> Any: ...

    def mark_processed(self, fr_id: int, supplier_order_id: str | None) -> None: ...

    def flag_fulfillment_request(self, fr_id: int, status: str, message: str) -> None: ...

    def create_shipment(self, body: dict[str, Any]) -> tuple[int, bool]: ...

    def update_shipment_status(self, shipment_id: int, status: str) -> None: ...

    def create_source_invoice(self, body: dict[str, Any]) -> tuple[int, bool]: ...

    def update_source_invoice_status(self, invoice_id: int, invoice_status: str) -> None: ...


def unprocessed_requests(
    hook: PlatformClient, po_numbers: Sequence[str] | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """Unprocessed US Direct fulfillment requests, oldest first (only ``po_numbers`` if given)."""
    wanted = set(po_numbers or ())
    out: list[dict[str, Any]] = []
    for page in hook.iter_fulfillment_requests(status="Unprocessed", source_name=SOURCE_NAME):
        for fr in page:
            if wanted and fr.get("fulfillmentRequestNumber") not in wanted:
                continue
            out.append(fr)
            if limit and len(out) >= limit:
                return out
    return out


def processed_requests(hook: PlatformClient, since: dt.date) -> list[tuple[str, dt.date]]:
    """``(po_number, inserted date)`` of Processed US Direct requests inserted on or after ``since``."""
    out: list[tuple[str, dt.date]] = []
    for page in hook.iter_fulfillment_requests(status="Processed", source_name=SOURCE_NAME):
        for fr in page:
            inserted = dt.datetime.fromisoformat(fr["insertedAt"]).date()
            if inserted >= since:
                out.append((fr["fulfillmentRequestNumber"], inserted))
    return out


# --- shipments and invoices -------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """What the platform holds for one shipment or invoice after this run."""

    key: str  # shipment_id or invoice_number
    platform_id: int | None
    status: str | None  # the status the platform now has
    action: str  # created | status_updated | unchanged | error
    error: str | None = None


def _money(value: Any) -> float:
    return float(Decimal(str(value or 0)))


def _shipped_at(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{value.isoformat() if isinstance(value, dt.date) else value}T00:00:00Z"


def shipment_body(shipment: dict[str, Any], items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``POST /shipments`` body from a mapped shipment and its mapped items."""
    return {
        "fulfillmentRequestNumber": shipment["po_number"],
        "allowDuplicateTrackingNumbers": False,
        "shipment": {
            "trackingNumber": shipment["tracking_number"],
            "carrier": shipment.get("carrier"),
            "method": shipment.get("method"),
            "shippedAt": _shipped_at(shipment.get("ship_date")),
            "status": shipment["status"],
        },
        "shipmentItems": [{"sku": item["sku"], "quantity": int(item["quantity"])} for item in items],
    }


def invoice_body(invoice: dict[str, Any], lines: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``POST /source-invoices`` body from a mapped invoice and its mapped lines."""
    product = sum((Decimal(str(line.get("amount") or 0)) for line in lines), Decimal("0"))
    date = invoice.get("invoice_date")
    return {
        "invoiceNumber": invoice["invoice_number"],
        "fulfillmentRequestNumber": invoice["po_number"],
        "invoiceDate": date.isoformat() if isinstance(date, dt.date) else date,
        "invoiceStatus": invoice["status"],
        "totalCost": _money(invoice.get("total")),
        "totalProductCost": float(product),
        "totalShippingCost": _money(invoice.get("shipping")),
        "totalFeeCost": _money(invoice.get("fees")),
        "totalTaxCost": _money(invoice.get("tax")),
        "invoiceItems": [
            {
                "invoiceItemType": "Product",
                "sku": line.get("sku"),
                "quantity": int(line["quantity"]),
                "perUnitCost": _money(line.get("unit_cost")),
                "cost": _money(line.get("amount")),
            }
            for line in lines
        ],
    }


def deliver(
    key: str,
    status: str,
    body: dict[str, Any],
    known: tuple[int | None, str | None] | None,
    create: Any,
    update_status: Any,
) -> Delivery:
    """Create once; afterwards send only a changed status (409 on create means it exists).

    ``known`` is what an earlier run delivered (platform id and status) when a warehouse keeps
    that memory; without it the status is re-sent after a 409, which the platform applies
    idempotently.
    """
    try:
        if known is not None and known[0] is not None:
            platform_id, created = int(known[0]), False
        else:
            platform_id, created = create(body)
        if created:
            return Delivery(key, platform_id, status, "created")
        if known is not None and known[1] == status:
            return Delivery(key, platform_id, status, "unchanged")
        update_status(platform_id, status)
        return Delivery(key, platform_id, status, "status_updated")
    except NotFoundError as exc:
        return Delivery(
            key,
            None,
            None,
            "error",
            f"the platform has no fulfillment request {body.get('fulfillmentRequestNumber')} ({exc}); "
            "create or restore the request on the platform, the next run delivers it again",
        )
    except PermanentError:
        raise  # a refused platform credential fails every item alike: stop now, without retries
    except UsDirectError as exc:
        return Delivery(key, None, None, "error", str(exc))


def deliver_shipments(
    hook: PlatformClient,
    shipments: Sequence[dict[str, Any]],
    items: dict[str, list[dict[str, Any]]],
    known: dict[str, tuple[int | None, str | None]] | None = None,
) -> list[Delivery]:
    """Deliver mapped shipments (``items`` by shipment_id); ``known`` from the warehouse if any."""
    known = known or {}
    return [
        deliver(
            s["shipment_id"],
            s["status"],
            shipment_body(s, items.get(s["shipment_id"], [])),
            known.get(s["shipment_id"]),
            hook.create_shipment,
            hook.update_shipment_status,
        )
        for s in shipments
    ]


def deliver_invoices(
    hook: PlatformClient,
    invoices: Sequence[dict[str, Any]],
    lines: dict[str, list[dict[str, Any]]],
    known: dict[str, tuple[int | None, str | None]] | None = None,
) -> list[Delivery]:
    """Deliver mapped invoices (``lines`` by invoice_number); ``known`` from the warehouse if any."""
    known = known or {}
    return [
        deliver(
            inv["invoice_number"],
            inv["status"],
            invoice_body(inv, lines.get(inv["invoice_number"], [])),
            known.get(inv["invoice_number"]),
            hook.create_source_invoice,
            hook.update_source_invoice_status,
        )
        for inv in invoices
    ]


ADDITIONAL_INFO = "Additional Info Required"
PLATFORM_FAILED = "Failed"


class PlatformOrderRecorder:
    """Tells the platform what became of each request: processed, or flagged with the reason."""

    def __init__(self, hook: Any) -> None:
        self.hook = hook

    def __call__(self, outcome: OrderOutcome) -> None:
        if outcome.fr_id is None:
            return
        if outcome.cancelled:
            self.hook.flag_fulfillment_request(outcome.fr_id, PLATFORM_FAILED, outcome.message or "cancelled")
        elif outcome.kind == OutcomeKind.SUBMITTED:
            self.hook.mark_processed(outcome.fr_id, outcome.supplier_order_id)
        elif outcome.kind == OutcomeKind.NEEDS_ATTENTION:
            self.hook.flag_fulfillment_request(outcome.fr_id, ADDITIONAL_INFO, outcome.message or "")

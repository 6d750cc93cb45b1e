"""Fulfillment requests: the order payload a template maps, and the warehouse's request ledger.

``fulfillment_requests`` doubles as Send Orders' submission ledger; ``LedgerState`` is what it
keeps across runs (a run's per-PO decision is ``usdirect.domain.orders.OutcomeKind``).
"""

from __future__ import annotations

from enum import StrEnum

from usdirect.domain.records import DATE, INT, INT32, MONEY, STRING, TIMESTAMP, Field, Record, mapped


class LedgerState(StrEnum):
    """Where a fulfillment request stands with US Direct."""

    PENDING = "pending"  # to send
    SUBMITTING = "submitting"  # an attempt is counted and maybe sent: look it up before any resend
    SUBMITTED = "submitted"  # US Direct has the order
    NEEDS_ATTENTION = "needs_attention"  # a person must fix the data; nothing was created


class LineStatus(StrEnum):
    """What US Direct made of one line of an order."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"


class OrderStatus(StrEnum):
    """US Direct's order status words that the pipelines act on."""

    PARTIALLY_ACCEPTED = "partially_accepted"
    ON_HOLD = "on_hold"
    CANCELLED = "cancelled"
    PARTIALLY_SHIPPED = "partially_shipped"
    SHIPPED = "shipped"


# The order payload the orders template maps (sent to US Direct, not stored as such).
ORDER = Record(
    "order",
    None,
    (
        mapped("fr_id", INT, "the platform's fulfillment request id", required=True),
        mapped("po_number", STRING, "the fulfillment request number", required=True),
        mapped("customer_order_number", STRING),
        mapped("order_date", DATE),
        mapped("shipping_code", STRING, "a US Direct shipping code", required=True),
        mapped("ship_to.name", STRING, required=True),
        mapped("ship_to.company", STRING),
        mapped("ship_to.address1", STRING, required=True),
        mapped("ship_to.address2", STRING),
        mapped("ship_to.city", STRING, required=True),
        mapped("ship_to.state", STRING, required=True),
        mapped("ship_to.postal_code", STRING, required=True),
        mapped("ship_to.country", STRING, required=True),
        mapped("ship_to.phone", STRING),
        mapped("ship_to.email", STRING),
    ),
)
ORDER_LINE = Record(
    "order line",
    None,
    (
        mapped("line_number", INT, required=True),
        mapped("item_number", STRING, "US Direct item number", required=True),
        mapped("quantity", INT, required=True),
        mapped("unit_cost", MONEY),
    ),
)

FULFILLMENT_REQUEST = Record(
    "fulfillment request",
    "fulfillment_requests",
    (
        Field("po_number", STRING, nullable=False, key=True, description="the fulfillment request number"),
        Field("fr_id", INT, nullable=False, description="the platform's fulfillment request id"),
        Field("source", STRING, nullable=False, description="who wrote it: platform, demo, ..."),
        Field("order_number", STRING),
        Field("inserted_at", TIMESTAMP),
        Field("shipping_carrier", STRING),
        Field("shipping_method", STRING),
        Field("shipping_code", STRING),
        Field("ship_name", STRING),
        Field("ship_company", STRING),
        Field("ship_address1", STRING),
        Field("ship_address2", STRING),
        Field("ship_city", STRING),
        Field("ship_state", STRING),
        Field("ship_postal", STRING),
        Field("ship_country", STRING),
        Field("ship_phone", STRING),
        Field("ship_email", STRING),
        Field("status", STRING, nullable=False, description="a LedgerState"),
        Field("supplier_order_id", STRING),
        Field("order_status", STRING, description="US Direct's order status (see OrderStatus)"),
        Field("submitted_at", TIMESTAMP),
        Field("attempts", INT32, nullable=False, description="sends counted (each before it is made)"),
        Field("last_attempt_at", TIMESTAMP),
        Field("last_error", STRING),
        Field("invoice_checked_at", TIMESTAMP),
        Field("invoice_problem", STRING),
        Field("updated_at", TIMESTAMP, nullable=False),
    ),
)
FULFILLMENT_REQUEST_LINE = Record(
    "fulfillment request line",
    "fulfillment_request_lines",
    (
        Field("po_number", STRING, nullable=False, key=True),
        Field("line_number", INT32, nullable=False, key=True),
        Field("item_id", INT, description="the platform's item id"),
        Field("sku", STRING, nullable=False),
        Field("title", STRING),
        Field("quantity", INT32),
        Field("unit_cost", MONEY),
        Field("line_status", STRING, description="a LineStatus once US Direct answered"),
        Field("line_reason", STRING),
    ),
)

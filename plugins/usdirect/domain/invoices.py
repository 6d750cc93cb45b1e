"""The invoice record (``usdirect_invoices``) and its lines (``usdirect_invoice_lines``)."""

from __future__ import annotations

from typing import Any, Protocol

from usdirect.domain.records import DATE, INT32, MONEY, STRING, Field, Record, delivery_fields, mapped

INVOICE = Record(
    "invoice",
    "usdirect_invoices",
    (
        mapped("invoice_number", STRING, required=True, nullable=False, key=True),
        mapped("po_number", STRING, "the purchase order it bills", required=True, nullable=False),
        mapped("invoice_date", DATE),
        mapped("status", STRING, "the platform's invoice status (Paid, Credited, ...)", required=True),
        mapped("supplier_status", STRING, "US Direct's own status word"),
        mapped("currency", STRING),
        mapped("total", MONEY, required=True),
        mapped("shipping", MONEY),
        mapped("fees", MONEY),
        mapped("tax", MONEY),
        Field("check_problem", STRING, description="what the total and quantity checks found"),
        *delivery_fields("platform_invoice_id"),
    ),
)

INVOICE_LINE = Record(
    "invoice line",
    "usdirect_invoice_lines",
    (
        Field("invoice_number", STRING, nullable=False, key=True, description="the parent invoice"),
        mapped("line_number", INT32, required=True, nullable=False, key=True),
        mapped("item_number", STRING, "US Direct item number", required=True),
        mapped("sku", STRING),
        mapped("quantity", INT32, "units billed", required=True),
        mapped("unit_cost", MONEY),
        mapped("amount", MONEY),
    ),
)


class InvoiceClient(Protocol):
    """The US Direct call Get Invoice needs (``UsDirectHook`` provides it)."""

    def get_invoice(self, po_number: str) -> dict[str, Any] | None: ...

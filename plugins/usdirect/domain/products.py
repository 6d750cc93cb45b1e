"""What each step of an operation reads and what data it produces, declared once per operator class.

Airflow Assets (the tables a step writes, the platform records it publishes) and lineage are
derived from these declarations, so a step's outputs are named in one place. Bookkeeping tables
(``usdirect_runs``, watermarks, feed state, ledgers) are not data products and are not listed.

Tables are named, not given as ``Record``s: the operator classes declare them, and a DAG file must
parse without pyarrow (which the records import). ``table_record`` finds a table's ``Record``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from usdirect.domain.records import Record

# Warehouse tables (``tables``); ``tests/test_products.py`` checks them against the records.
INVENTORY = "usdirect_inventory"
INVENTORY_HISTORY = "usdirect_inventory_history"
REJECTS = "usdirect_rejects"
SHIPMENTS = "usdirect_shipments"
SHIPMENT_ITEMS = "usdirect_shipment_items"
INVOICES = "usdirect_invoices"
INVOICE_LINES = "usdirect_invoice_lines"
FULFILLMENT_REQUESTS = "fulfillment_requests"

# Platform record kinds (``platform``); an account-scoped Asset name is derived from them.
PLATFORM_INVENTORY = "inventory_variants"
PLATFORM_SHIPMENTS = "shipments"
PLATFORM_INVOICES = "source_invoices"
PLATFORM_FULFILLMENT_REQUESTS = "fulfillment_requests"

# Sources (``reads``): "usdirect:<endpoint>", "platform:<endpoint>" or "warehouse:<table>".
USDIRECT_FEED = "usdirect:feed"


@dataclass(frozen=True)
class Products:
    """What one step produces and reads.

    ``tables``: the warehouse tables it writes (when the warehouse is a target of the account).
    ``platform``: the platform record kinds it creates or updates.
    ``reads``: where its input comes from, beyond the upstream task's staged files.
    """

    tables: tuple[str, ...] = ()
    platform: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()


NONE = Products()


def table_record(table: str) -> Record:
    """The ``Record`` of a product table: its fields (the inventory tables: the mapped columns they
    hold; the tables add the account and their own bookkeeping)."""
    from dataclasses import replace

    from usdirect.domain.fulfillment import FULFILLMENT_REQUEST
    from usdirect.domain.inventory import INVENTORY_ROW, TRACKED
    from usdirect.domain.invoices import INVOICE, INVOICE_LINE
    from usdirect.domain.records import Record
    from usdirect.domain.rejects import REJECT
    from usdirect.domain.shipments import SHIPMENT, SHIPMENT_ITEM

    records = {
        INVENTORY: replace(INVENTORY_ROW, kind="inventory", table=INVENTORY),
        INVENTORY_HISTORY: Record(
            "inventory history", INVENTORY_HISTORY, INVENTORY_ROW.select(("sku", *TRACKED))
        ),
    }
    for record in (REJECT, SHIPMENT, SHIPMENT_ITEM, INVOICE, INVOICE_LINE, FULFILLMENT_REQUEST):
        records[record.stored_as] = record
    return records[table]

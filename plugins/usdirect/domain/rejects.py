"""The reject record: a row or order that could not be processed, kept with its reason.

Every producer (mapping, de-duplication, orders, shipments, invoices) builds rejects in
``REJECT_SCHEMA``; the warehouse stores them in ``STORED_REJECT_SCHEMA`` (``usdirect_rejects``).
"""

from __future__ import annotations

import pyarrow as pa

from usdirect.domain.records import INT, STRING, TIMESTAMP, Field, Record

# The row a reject defers to (the duplicate of the same SKU that was kept): a column of its own, so
# that the reason text stays the same for the same cause and reasons group.
KEPT_ROW = "kept_row_number"
REJECT = Record(
    "reject",
    "usdirect_rejects",
    (
        Field("run_id", STRING, nullable=False),
        Field("operation", STRING, nullable=False),
        Field("row_number", INT, description="the row of the feed or batch, when it has one"),
        Field("key", STRING, description="the SKU, PO number, shipment or invoice"),
        Field("reason", STRING, nullable=False, description="'field: what is wrong'; reasons group"),
        Field("raw", STRING, description="the rejected input as read"),
        Field("recorded_at", TIMESTAMP, nullable=False),
        Field(KEPT_ROW, INT),
    ),
)
REJECT_SCHEMA = REJECT.arrow_schema(("operation", "row_number", "key", "reason", "raw"))
STORED_REJECT_SCHEMA = REJECT.arrow_schema((*REJECT_SCHEMA.names, KEPT_ROW))


def conform_rejects(rejects: pa.Table) -> pa.Table:
    """Rejects of any producer as ``STORED_REJECT_SCHEMA`` (``kept_row_number`` null where absent)."""
    if KEPT_ROW not in rejects.column_names:
        rejects = rejects.append_column(KEPT_ROW, pa.nulls(rejects.num_rows, pa.int64()))
    return rejects.select(STORED_REJECT_SCHEMA.names).cast(STORED_REJECT_SCHEMA)

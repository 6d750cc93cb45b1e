"""The reject record: a row or order that could not be processed, kept with its reason.

Every producer (mapping, de-duplication, orders, shipments, invoices) builds rejects in
``REJECT_SCHEMA``; the warehouse stores them in ``STORED_REJECT_SCHEMA`` (``usdirect_rejects``).
"""

from __future__ import annotations

import pyarrow as pa

REJECT_SCHEMA = pa.schema(
    [
        ("operation", pa.string()),
        ("row_number", pa.int64()),
        ("key", pa.string()),
        ("reason", pa.string()),
        ("raw", pa.string()),
    ]
)
# The row a reject defers to (the duplicate of the same SKU that was kept): a column of its own, so
# that the reason text stays the same for the same cause and reasons group.
KEPT_ROW = "kept_row_number"
STORED_REJECT_SCHEMA = REJECT_SCHEMA.append(pa.field(KEPT_ROW, pa.int64()))


def conform_rejects(rejects: pa.Table) -> pa.Table:
    """Rejects of any producer as ``STORED_REJECT_SCHEMA`` (``kept_row_number`` null where absent)."""
    if KEPT_ROW not in rejects.column_names:
        rejects = rejects.append_column(KEPT_ROW, pa.nulls(rejects.num_rows, pa.int64()))
    return rejects.select(STORED_REJECT_SCHEMA.names).cast(STORED_REJECT_SCHEMA)

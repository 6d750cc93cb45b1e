"""Demo helpers: seed the demo warehouse with the sandbox platform's requests, and the counts the
demo summary prints."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from usdirect.targets.warehouse.fulfillment_requests import import_fulfillment_requests
from usdirect.targets.warehouse.order_tables import RECONCILIATION, ensure_tables
from usdirect.targets.warehouse.sql import Warehouse


def seed_demo_requests(wh: Warehouse, platform_frs: Sequence[dict[str, Any]]) -> int:
    """Demo: copy the sandbox platform's US Direct requests into the warehouse as ``pending``
    (what a channel integration would write); other sources' requests are left out."""
    frs = [fr for fr in platform_frs if fr.get("sourceName") == "US Direct"]
    with wh.connect() as conn:
        return import_fulfillment_requests(wh, conn, frs, source="demo")


def reconciliation_counts(wh: Warehouse) -> dict[str, int]:
    """PO count per reconciliation state plus ``with_problem`` (what the demo summary prints)."""
    with wh.connect() as conn:
        ensure_tables(wh, conn)
        rows = wh.fetchall(
            conn,
            f"SELECT state, COUNT(*), SUM(CASE WHEN problem IS NULL THEN 0 ELSE 1 END) "
            f"FROM {wh.table(RECONCILIATION)} GROUP BY state ORDER BY state",
        )
    counts = {state: int(n) for state, n, _ in rows}
    counts["with_problem"] = sum(int(p or 0) for _, _, p in rows)
    return counts

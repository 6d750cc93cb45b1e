"""The warehouse's fulfillment_requests as Send Orders' durable ledger and outcome recorder."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

from usdirect.domain.orders import NEEDS_ATTENTION, RETRY, SUBMITTED, UNRESOLVED, OrderOutcome


class WarehouseOrders:
    """The warehouse's fulfillment_requests as the durable ledger and as a recorder."""

    def __init__(self, wh: Any) -> None:
        self.wh = wh
        self._lock = threading.Lock()  # one writer at a time: DuckDB files serialise writers anyway

    def claim(self, po_number: str, attempts_seen: int) -> int | None:
        from usdirect.targets.warehouse import orders as ow

        with self._lock:
            return ow.claim_attempt(self.wh, po_number, attempts_seen)

    def __call__(self, outcome: OrderOutcome) -> None:
        from usdirect.targets.warehouse import orders as ow

        with self._lock:
            if outcome.kind == SUBMITTED:
                ow.record_submitted(
                    self.wh,
                    outcome.po_number,
                    outcome.supplier_order_id,
                    outcome.order_status,
                    outcome.submitted_at or dt.datetime.now(dt.UTC),
                    [(ln.line_number, ln.status, ln.reason) for ln in outcome.lines],
                    note=outcome.message,
                )
            elif outcome.kind in (NEEDS_ATTENTION, RETRY, UNRESOLVED):
                status = {NEEDS_ATTENTION: ow.NEEDS_ATTENTION, RETRY: ow.PENDING, UNRESOLVED: ow.SUBMITTING}
                ow.record_problem(self.wh, outcome.po_number, status[outcome.kind], outcome.message or "")

"""The warehouse's fulfillment_requests as Send Orders' durable ledger and outcome recorder."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

from usdirect.domain.fulfillment import LedgerState
from usdirect.domain.orders import OrderOutcome, OutcomeKind
from usdirect.targets.warehouse import fulfillment_requests as fr_ledger

# The ledger state a run's outcome leaves behind when it is not ``submitted``.
_STATE_AFTER = {
    OutcomeKind.NEEDS_ATTENTION: LedgerState.NEEDS_ATTENTION,
    OutcomeKind.RETRY: LedgerState.PENDING,
    OutcomeKind.UNRESOLVED: LedgerState.SUBMITTING,
}


class WarehouseOrders:
    """The warehouse's fulfillment_requests as the durable ledger and as a recorder."""

    def __init__(self, wh: Any) -> None:
        self.wh = wh
        self._lock = threading.Lock()  # one writer at a time: DuckDB files serialise writers anyway

    def claim(self, po_number: str, attempts_seen: int) -> int | None:
        with self._lock:
            return fr_ledger.claim_attempt(self.wh, po_number, attempts_seen)

    def __call__(self, outcome: OrderOutcome) -> None:
        with self._lock:
            if outcome.kind == OutcomeKind.SUBMITTED:
                fr_ledger.record_submitted(
                    self.wh,
                    outcome.po_number,
                    outcome.supplier_order_id,
                    outcome.order_status,
                    outcome.submitted_at or dt.datetime.now(dt.UTC),
                    [(ln.line_number, ln.status, ln.reason) for ln in outcome.lines],
                    note=outcome.message,
                )
            elif outcome.kind in _STATE_AFTER:
                fr_ledger.record_problem(
                    self.wh, outcome.po_number, _STATE_AFTER[outcome.kind], outcome.message or ""
                )

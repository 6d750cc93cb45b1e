"""The Send Orders records: a request to send, what became of it, and the ports the sender uses.

Outcome kinds are what one run decided per PO; the ledger's states (``LedgerState``) are what
the warehouse keeps across runs. The Protocols name what the sender needs from the US Direct hook
and the warehouse, so the pipeline depends on them and not on the adapters.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from usdirect.domain.fulfillment import LedgerState, LineStatus, OrderStatus


class OutcomeKind(StrEnum):
    """What one run made of a PO."""

    SUBMITTED = "submitted"  # US Direct has the order (created now, or found existing)
    NEEDS_ATTENTION = "needs_attention"  # the data must be fixed by a person; nothing was created
    RETRY = "retry"  # nothing was created; the next run sends it again
    UNRESOLVED = "unresolved"  # may have been created; the next run looks it up before anything else
    ERROR = "error"  # this run could not finish the PO (e.g. recording failed); the next run resumes it
    DRY_RUN = "dry_run"
    CLAIMED_ELSEWHERE = "claimed_elsewhere"  # another run claimed or is sending it; left alone here
    NOT_SENT = "not_sent"  # the run stopped (credential refused) before this PO; its ledger is untouched


@dataclass(frozen=True)
class OrderRequest:
    """One fulfillment request to send, with what the ledger knows about it."""

    po_number: str
    fr_id: int | None
    fr: dict[str, Any]
    state: LedgerState = LedgerState.PENDING  # or SUBMITTING: a previous send's outcome is unknown
    attempts: int = 0


@dataclass(frozen=True)
class LineOutcome:
    line_number: int
    item_number: str | None
    status: LineStatus
    reason: str | None = None


@dataclass
class OrderOutcome:
    """What became of one PO in this run; recorders turn it into ledger rows / platform calls."""

    po_number: str
    fr_id: int | None
    kind: OutcomeKind
    supplier_order_id: str | None = None
    order_status: str | None = None
    lines: list[LineOutcome] = field(default_factory=list)
    submitted_at: dt.datetime | None = None
    attempts: int = 0
    message: str | None = None
    found_existing: bool = False
    payload: dict[str, Any] | None = None

    @property
    def cancelled(self) -> bool:
        """US Direct created the order but could fill no line (every line rejected)."""
        return self.kind == OutcomeKind.SUBMITTED and self.order_status == OrderStatus.CANCELLED


class OrderClient(Protocol):
    """The two US Direct calls Send Orders needs (``UsDirectHook`` provides them)."""

    def submit_order(self, payload: dict[str, Any]) -> dict[str, Any]: ...

    def get_order(self, po_number: str) -> dict[str, Any] | None: ...


class OrderLedger(Protocol):
    """Durable per-PO state written before each send (the warehouse's fulfillment_requests)."""

    def claim(self, po_number: str, attempts_seen: int) -> int | None: ...


class ClaimLocks(Protocol):
    """Per-PO locks held while a run works on a PO (``usdirect.targets.warehouse.order_claims``)."""

    def acquire(self, po_number: str) -> bool: ...

    def release(self, po_number: str) -> None: ...


@dataclass
class SendReport:
    """Per-PO outcomes of a run and the headline counts."""

    outcomes: list[OrderOutcome] = field(default_factory=list)

    def count(self, kind: OutcomeKind) -> int:
        return sum(1 for o in self.outcomes if o.kind == kind)

    @property
    def counts(self) -> dict[str, int]:
        out = {k.value: self.count(k) for k in OutcomeKind}
        out["found_existing"] = sum(1 for o in self.outcomes if o.found_existing)
        out["cancelled_by_supplier"] = sum(1 for o in self.outcomes if o.cancelled)
        for status in (OrderStatus.PARTIALLY_ACCEPTED, OrderStatus.ON_HOLD):
            out[status.value] = sum(1 for o in self.outcomes if o.order_status == status)
        return out

    @property
    def unfinished(self) -> list[OrderOutcome]:
        """POs this run could not settle (they are retried, never re-sent blindly)."""
        unsettled = (OutcomeKind.RETRY, OutcomeKind.UNRESOLVED, OutcomeKind.ERROR)
        return [o for o in self.outcomes if o.kind in unsettled]

"""Get Invoice: for shipped POs without a paid invoice, ask US Direct, check, upsert, deliver.

``404 invoice_not_found`` means "not invoiced yet": the PO is asked again in later runs and only
reported once it is older than ``overdue_after_days`` since its first shipment. An invoice whose
figures do not add up is kept and flagged with the figures, never dropped.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pyarrow as pa

from usdirect.domain.batch import Batch
from usdirect.domain.invoices import INVOICE, INVOICE_LINE, InvoiceClient
from usdirect.pipelines.shipments import deliver_with_memory, map_batch
from usdirect.targets.warehouse import invoices as wh_invoices
from usdirect.targets.warehouse.sql import UpsertCounts

log = logging.getLogger(__name__)

INVOICE_FIELDS = list(INVOICE.batch)  # the mapped fields, then check_problem
LINE_FIELDS = list(INVOICE_LINE.names)
ZERO = Decimal("0")


@dataclass(frozen=True)
class Candidate:
    """A PO to ask for; ``since`` is when it shipped (None when named by hand)."""

    po_number: str
    since: dt.date | None = None


@dataclass
class InvoiceFetch:
    batch: Batch
    not_yet: list[str] = field(default_factory=list)
    overdue: dict[str, str] = field(default_factory=dict)
    mismatched: dict[str, str] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        return {
            "invoices": self.batch.parents.num_rows,
            "not_invoiced_yet": len(self.not_yet),
            "overdue": len(self.overdue),
            "mismatched": len(self.mismatched),
            "rejected": self.batch.rejects.num_rows,
        }


def candidates(wh: Any | None, po_numbers: Sequence[str] = ()) -> list[Candidate]:
    """Shipped POs with no paid invoice (warehouse), plus POs named in the run's Params."""
    out: dict[str, Candidate] = {}
    if wh is not None:
        with wh.connect() as conn:
            for po, first_ship in wh_invoices.pos_awaiting_invoice(wh, conn):
                out[po] = Candidate(po, first_ship)
    for po in po_numbers:
        out.setdefault(po, Candidate(po))
    return list(out.values())


def fetch_invoices(
    client: InvoiceClient,
    template: Any,
    wanted: Sequence[Candidate],
    today: dt.date,
    overdue_after_days: int,
    shipped: dict[tuple[str, str], int] | None = None,
) -> InvoiceFetch:
    """Ask for each candidate's invoice, map them and check their figures."""
    records: list[dict[str, Any]] = []
    not_yet: list[str] = []
    overdue: dict[str, str] = {}
    for cand in wanted:
        invoice = client.get_invoice(cand.po_number)
        if invoice is not None:
            records.append(invoice)
            continue
        not_yet.append(cand.po_number)
        if cand.since is not None and (today - cand.since).days > overdue_after_days:
            overdue[cand.po_number] = (
                f"no invoice {(today - cand.since).days} days after the first shipment "
                f"(expected within {overdue_after_days}); ask US Direct to invoice PO {cand.po_number}"
            )
    batch = map_batch(template, records, [f.name for f in INVOICE.mapped], LINE_FIELDS)
    problems = check_invoices(batch, shipped)
    parents = batch.parents.append_column(
        "check_problem",
        pa.array([problems.get(n) for n in batch.parents.column("invoice_number").to_pylist()], pa.string()),
    )
    for number, problem in problems.items():
        log.warning("invoice %s does not add up: %s", number, problem)
    return InvoiceFetch(Batch(parents, batch.children, batch.rejects), not_yet, overdue, problems)


def check_invoices(batch: Batch, shipped: dict[tuple[str, str], int] | None) -> dict[str, str]:
    """``invoice_number -> what is wrong, with the figures`` for invoices that do not add up."""
    lines = batch.children_by("invoice_number")
    problems: dict[str, str] = {}
    for inv in batch.parents.to_pylist():
        found: list[str] = []
        own = lines.get(inv["invoice_number"], [])
        amounts = sum((_d(ln.get("amount")) for ln in own), ZERO)
        extra = [
            ("shipping", _d(inv.get("shipping"))),
            ("fees", _d(inv.get("fees"))),
            ("tax", _d(inv.get("tax"))),
        ]
        expected = amounts + sum((v for _, v in extra), ZERO)
        if expected != _d(inv.get("total")):
            parts = " + ".join(f"{name} {value:.2f}" for name, value in extra)
            found.append(
                f"lines {amounts:.2f} + {parts} = {expected:.2f} but total is {_d(inv.get('total')):.2f}"
            )
        for ln in own:
            if ln.get("unit_cost") is not None and ln.get("amount") is not None:
                calc = _d(ln["unit_cost"]) * int(ln["quantity"])
                if calc != _d(ln["amount"]):
                    found.append(
                        f"line {ln['line_number']}: {ln['quantity']} x {_d(ln['unit_cost']):.2f} "
                        f"= {calc:.2f} but amount is {_d(ln['amount']):.2f}"
                    )
        if shipped is not None:
            invoiced: dict[str, int] = defaultdict(int)
            for ln in own:
                invoiced[str(ln["item_number"])] += int(ln["quantity"] or 0)
            for item, qty in sorted(invoiced.items()):
                sent = shipped.get((inv["po_number"], item), 0)
                if qty > sent:
                    found.append(f"item {item}: invoiced {qty} but shipped {sent}")
        if found:
            problems[inv["invoice_number"]] = "; ".join(found)
    return problems


def _d(value: Any) -> Decimal:
    return ZERO if value is None else Decimal(str(value))


def load_warehouse(wh: Any, fetched: InvoiceFetch, run_id: str, checked: Sequence[str]) -> UpsertCounts:
    """Upsert invoices and lines, note overdue POs and rejects, in one transaction."""
    from usdirect.targets.warehouse.audit import write_rejects

    with wh.connect() as conn:
        counts = wh_invoices.upsert_invoices(wh, conn, fetched.batch.parents, fetched.batch.children, run_id)
        wh_invoices.record_invoice_checks(wh, conn, checked, fetched.overdue)
        write_rejects(wh, conn, run_id, fetched.batch.rejects)
    return counts


def shipped_quantities(wh: Any | None, pos: Sequence[str]) -> dict[tuple[str, str], int] | None:
    if wh is None:
        return None
    with wh.connect() as conn:
        return wh_invoices.shipped_quantities(wh, conn, pos)


def deliver_platform(hook: Any, batch: Batch, wh: Any | None) -> dict[str, Any]:
    """POST new source invoices, PATCH changed statuses; errors are kept with reasons.

    With a warehouse, invoices whose earlier delivery failed are delivered again as well.
    """
    from usdirect.targets.platform.orders import deliver_invoices

    return deliver_with_memory(hook, batch, wh, "invoices", "invoice_number", deliver_invoices)

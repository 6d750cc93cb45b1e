"""Get Invoice: ask for the invoices of shipped, unpaid POs once, then one task per target.

Candidates come from the warehouse (shipped POs without a paid invoice); the ``po_numbers``
Param adds POs by hand. Without a warehouse, the platform's processed requests of the last
``2 x overdue_after_days`` days are asked for, as the platform keeps no invoice state to query.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from usdirect.domain import products as pr
from usdirect.operators.base import OperationRun
from usdirect.operators.delivery import UsDirectStagedTargetOperator, deliver_staged_to_platform, wire_targets
from usdirect.operators.usdirect_operator import UsDirectBaseOperator, po_list
from usdirect.settings.config import Account, Config

if TYPE_CHECKING:
    from usdirect.pipelines.invoices import Candidate

OPERATION = "get_invoices"
STAGE = "invoices"


class UsDirectGetInvoicesOperator(UsDirectBaseOperator):
    """Ask US Direct for invoices (``GET /v1/invoices/{po}``, Reseller Token) and stage them.

    The invoices wait in the run's staging folder for ``UsDirectInvoicesToWarehouseOperator`` and
    ``UsDirectInvoicesToPlatformOperator``; a 404 means "not invoiced yet" and is reported once the
    PO is overdue. Returns the counts (XCom). Takes every argument of ``UsDirectBaseOperator``.

    :param po_numbers: Also ask for these POs: a list, a JSON or comma list string, or the rows of a
        one-column SQL query (e.g. ``SQLExecuteQueryOperator(...).output``). (templated)
    :param only_po_numbers: Ask for ``po_numbers`` alone, not also the warehouse's shipped POs
        that await an invoice.
    :param overdue_after_days: Report a shipped PO still without an invoice after this many days
        (default 30).
    """

    operation = OPERATION
    products = pr.Products(reads=("usdirect:GET /v1/invoices/{po}", "warehouse:" + pr.SHIPMENTS))
    template_fields: Sequence[str] = (*UsDirectBaseOperator.template_fields, "po_numbers")

    def __init__(
        self,
        *,
        po_numbers: Any = None,
        only_po_numbers: bool = False,
        overdue_after_days: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(operation_settings={"overdue_after_days": overdue_after_days}, **kwargs)
        self.po_numbers = po_numbers
        self.only_po_numbers = only_po_numbers

    def run_inputs(self) -> dict[str, Any]:
        pos = po_list(self.po_numbers)
        return {} if pos is None else {"po_numbers": pos}

    def execute_run(self, run: OperationRun) -> dict[str, int]:
        return fetch_invoices(run, only_named=self.only_po_numbers)


class UsDirectInvoicesToWarehouseOperator(UsDirectStagedTargetOperator):
    """Upsert the staged invoices and lines by invoice_number; note overdue POs for the
    reconciliation view. ``fetched`` is ``UsDirectGetInvoicesOperator``'s output."""

    operation = OPERATION
    products = pr.Products(tables=(pr.INVOICES, pr.INVOICE_LINES, pr.REJECTS))

    def execute_run(self, run: OperationRun) -> dict[str, int]:
        return load_warehouse(run)


class UsDirectInvoicesToPlatformOperator(UsDirectStagedTargetOperator):
    """POST the staged invoices that are new to the platform, PATCH changed statuses.
    ``fetched`` is ``UsDirectGetInvoicesOperator``'s output."""

    operation = OPERATION
    products = pr.Products(platform=(pr.PLATFORM_INVOICES,))

    def execute_run(self, run: OperationRun) -> dict[str, int]:
        from usdirect.pipelines import invoices

        return deliver_staged_to_platform(run, STAGE, "invoice", invoices.deliver_platform)


def fetch_invoices(run: OperationRun, only_named: bool = False) -> dict[str, int]:
    """``GET /v1/invoices/{po}`` per candidate; 404 = not yet (reported once overdue)."""
    from usdirect.hooks.usdirect import UsDirectHook
    from usdirect.mapping import load_template
    from usdirect.pipelines import invoices

    settings = run.settings
    wh = run.warehouse()
    today = dt.datetime.now(dt.UTC).date()
    wanted = invoices.candidates(None if only_named else wh, tuple(run.params.get("po_numbers") or ()))
    if wh is None and not only_named and "platform" in run.targets:
        wanted += _platform_candidates(run, today, settings.overdue_after_days, {c.po_number for c in wanted})
    template = load_template(run.cfg.template_path(run.account, "get_invoices"))
    shipped = invoices.shipped_quantities(wh, [c.po_number for c in wanted])
    with UsDirectHook(run.account.usdirect_conn_id) as usdirect:
        fetched = invoices.fetch_invoices(
            usdirect,
            template,
            wanted,
            today,
            settings.overdue_after_days,
            shipped,
        )
    folder = run.staging(STAGE)
    fetched.batch.write(folder)
    with (folder / "checks.json").open("w") as f:
        json.dump({"checked": [c.po_number for c in wanted], "overdue": fetched.overdue}, f)
    for po, problem in fetched.overdue.items():
        run.record.counts.setdefault("overdue_pos", []).append(po)
        invoices.log.warning("PO %s: %s", po, problem)
    if fetched.overdue:
        from usdirect.notifications.notifier import alert_needs_attention

        alert_needs_attention(
            run,
            "invoices_overdue",
            f"{len(fetched.overdue)} shipped PO(s) have no invoice after {settings.overdue_after_days} days",
            dict(list(fetched.overdue.items())[:10]),
        )
    counts = fetched.counts
    run.record.counts.update(counts | {"candidates": len(wanted)})
    run.record.rows_in = len(wanted)
    run.record.rows_out = counts["invoices"]
    run.record.rows_rejected = counts["rejected"]
    return counts


def _platform_candidates(
    run: OperationRun, today: dt.date, overdue_days: int, skip: set[str]
) -> list[Candidate]:
    from usdirect.hooks.flxpoint import FlxpointHook
    from usdirect.pipelines.invoices import Candidate
    from usdirect.targets.platform.orders import processed_requests

    since = today - dt.timedelta(days=2 * overdue_days)
    with FlxpointHook(run.account.flxpoint_conn_id) as hook:
        found = processed_requests(hook, since)
    return [Candidate(po, inserted) for po, inserted in found if po not in skip]


def load_warehouse(run: OperationRun) -> dict[str, int]:
    """Upsert invoices and lines by invoice_number; note overdue POs for the reconciliation view."""
    from usdirect.domain.batch import Batch
    from usdirect.pipelines import invoices

    folder = run.staging(STAGE)
    batch = Batch.read(folder)
    with (folder / "checks.json").open("r") as f:
        checks = json.load(f)
    fetch = invoices.InvoiceFetch(batch, overdue=checks["overdue"])
    counts = invoices.load_warehouse(run.warehouse(), fetch, run.run_id, checks["checked"])
    out = {"seen": counts.seen, "new": counts.new, "status_changed": counts.changed}
    run.record.counts.update(out)
    run.record.rows_in = batch.parents.num_rows
    run.record.rows_out = counts.seen
    run.record.rows_changed = counts.new + counts.changed
    run.record.rows_rejected = batch.rejects.num_rows
    return out


def define_get_invoices(cfg: Config, account: Account) -> None:
    """The shipped DAG: fetch_invoices, then load_invoices_warehouse and/or deliver_invoices_platform."""
    wire_targets(
        cfg,
        account,
        UsDirectGetInvoicesOperator(task_id="fetch_invoices", account_id=account.id, from_settings=True),
        UsDirectInvoicesToWarehouseOperator,
        UsDirectInvoicesToPlatformOperator,
        STAGE,
    )

"""Get Invoice tasks: ask for the invoices of shipped, unpaid POs once, then one task per target.

Candidates come from the warehouse (shipped POs without a paid invoice); the ``po_numbers``
Param adds POs by hand. Without a warehouse, the platform's processed requests of the last
``2 x overdue_after_days`` days are asked for, as the platform keeps no invoice state to query.
"""

from __future__ import annotations

import datetime as dt
import json

from airflow.sdk import task

from usdirect.operators.base import OperationRun, operation_run
from usdirect.operators.delivery import deliver_staged_to_platform, wire_targets
from usdirect.settings.config import Account, Config

STAGE = "invoices"


@task(task_id="fetch_invoices")
def fetch_invoices(account_id: str) -> dict[str, int]:
    """``GET /v1/invoices/{po}`` per candidate; 404 = not yet (reported once overdue)."""
    from usdirect.hooks.usdirect import UsDirectHook
    from usdirect.mapping import load_template
    from usdirect.pipelines import invoices

    with operation_run("get_invoices", account_id) as run:
        settings = run.settings
        wh = run.warehouse()
        today = dt.datetime.now(dt.UTC).date()
        wanted = invoices.candidates(wh, tuple(run.params.get("po_numbers") or ()))
        if wh is None and "platform" in run.targets:
            wanted += _platform_candidates(
                run, today, settings.overdue_after_days, {c.po_number for c in wanted}
            )
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
                f"{len(fetched.overdue)} shipped PO(s) have no invoice after "
                f"{settings.overdue_after_days} days",
                dict(list(fetched.overdue.items())[:10]),
            )
        counts = fetched.counts
        run.record.counts.update(counts | {"candidates": len(wanted)})
        run.record.rows_in = len(wanted)
        run.record.rows_out = counts["invoices"]
        run.record.rows_rejected = counts["rejected"]
        return counts


def _platform_candidates(run: OperationRun, today: dt.date, overdue_days: int, skip: set[str]) -> list:
    from usdirect.hooks.flxpoint import FlxpointHook
    from usdirect.pipelines.invoices import Candidate
    from usdirect.targets.platform.orders import processed_requests

    since = today - dt.timedelta(days=2 * overdue_days)
    with FlxpointHook(run.account.flxpoint_conn_id) as hook:
        found = processed_requests(hook, since)
    return [Candidate(po, inserted) for po, inserted in found if po not in skip]


@task(task_id="load_invoices_warehouse")
def load_warehouse(account_id: str, fetched: dict[str, int]) -> dict[str, int]:
    """Upsert invoices and lines by invoice_number; note overdue POs for the reconciliation view."""
    from usdirect.pipelines import invoices
    from usdirect.pipelines.shipments import Batch

    with operation_run("get_invoices", account_id) as run:
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


@task(task_id="deliver_invoices_platform")
def deliver_platform(account_id: str, fetched: dict[str, int]) -> dict[str, int]:
    """POST new source invoices, PATCH changed statuses."""
    from usdirect.pipelines import invoices

    return deliver_staged_to_platform("get_invoices", account_id, STAGE, "invoice", invoices.deliver_platform)


def define_get_invoices(cfg: Config, account: Account) -> None:
    wire_targets(cfg, account, fetch_invoices, load_warehouse, deliver_platform)

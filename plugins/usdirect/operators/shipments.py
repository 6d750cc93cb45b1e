"""Get Shipments tasks: fetch the window's shipments once, then one task per target.

The fetch stages a Parquet batch in the run's staging folder; the target tasks read it, so a
failed platform delivery can be retried without asking US Direct again. When both targets are
configured the warehouse loads first: it remembers what the platform already has.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from airflow.sdk import task

from usdirect.operators.base import operation_run
from usdirect.operators.delivery import deliver_staged_to_platform, wire_targets
from usdirect.settings.config import Account, Config

STAGE = "shipments"
ORDER_STATUS = "order_status.json"  # PO -> status at US Direct, from the straggler lookups


@task(task_id="fetch_shipments")
def fetch_shipments(account_id: str) -> dict[str, Any]:
    """Shipments changed in the run's window (with overlap) plus per-PO straggler lookups; the
    window and the looked-up order statuses travel to the target tasks with the staged batch."""
    from usdirect.hooks.usdirect import UsDirectHook
    from usdirect.mapping import load_template
    from usdirect.pipelines import shipments

    with operation_run("get_shipments", account_id) as run:
        settings = run.settings
        start, end = run.incremental_window(dt.timedelta(hours=settings.straggler_age_hours))
        since = start - dt.timedelta(minutes=settings.overlap_minutes)
        wh = run.warehouse()
        stragglers = shipments.straggler_pos(wh, end, settings.straggler_age_hours) if wh else []
        template = load_template(run.cfg.template_path(run.account, "get_shipments"))
        with UsDirectHook(run.account.usdirect_conn_id) as usdirect:
            batch, fetched = shipments.fetch_shipments(usdirect, template, since, stragglers)
        batch.write(run.staging(STAGE))
        (run.staging(STAGE) / ORDER_STATUS).write_text(json.dumps(fetched.order_status, sort_keys=True))
        counts = {
            "shipments": batch.parents.num_rows,
            "items": batch.children.num_rows,
            "rejected": batch.rejects.num_rows,
            "changed_in_window": fetched.changed,
            "stragglers_checked": fetched.stragglers_checked,
            "stragglers_found": fetched.stragglers_found,
        }
        run.record.counts.update(counts)
        run.record.rows_in = fetched.changed + fetched.stragglers_found
        run.record.rows_out = batch.parents.num_rows
        run.record.rows_rejected = batch.rejects.num_rows
        run.alert_if_long_gap()
        return {**counts, "window_start": start.isoformat(), "window_end": end.isoformat()}


@task(task_id="load_shipments_warehouse")
def load_warehouse(account_id: str, fetched: dict[str, Any]) -> dict[str, int]:
    """Upsert the staged batch by shipment_id and the looked-up order statuses; each PO's
    fulfillment state follows in the view. The DAG's watermark moves on for the warehouse."""
    from usdirect.pipelines import shipments

    with operation_run("get_shipments", account_id) as run:
        batch = shipments.Batch.read(run.staging(STAGE))
        status_file = run.staging(STAGE) / ORDER_STATUS
        statuses = json.loads(status_file.read_text()) if status_file.exists() else {}
        counts = shipments.load_warehouse(run.warehouse(), batch, run.run_id, statuses)
        run.record_window("warehouse", fetched)
        out = {"seen": counts.seen, "new": counts.new, "status_changed": counts.changed}
        run.record.counts.update(out)
        run.record.rows_in = batch.parents.num_rows
        run.record.rows_out = counts.seen
        run.record.rows_changed = counts.new + counts.changed
        run.record.rows_rejected = batch.rejects.num_rows
        return out


@task(task_id="deliver_shipments_platform")
def deliver_platform(account_id: str, fetched: dict[str, Any]) -> dict[str, int]:
    """POST new shipments, PATCH changed statuses; an unknown FR fails the task with its reason.
    Once every shipment is delivered the DAG's watermark moves on for the platform."""
    from usdirect.pipelines import shipments

    return deliver_staged_to_platform(
        "get_shipments", account_id, STAGE, "shipment", shipments.deliver_platform, window=fetched
    )


def define_get_shipments(cfg: Config, account: Account) -> None:
    wire_targets(cfg, account, fetch_shipments, load_warehouse, deliver_platform)

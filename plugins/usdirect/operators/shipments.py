"""Get Shipments tasks: fetch the window's shipments once, then one task per target.

The fetch stages a Parquet batch in the run's staging folder; the target tasks read it, so a
failed platform delivery can be retried without asking US Direct again. When both targets are
configured the warehouse loads first: it remembers what the platform already has.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from usdirect.domain import products as pr
from usdirect.operators.base import OperationRun
from usdirect.operators.delivery import UsDirectStagedTargetOperator, deliver_staged_to_platform, wire_targets
from usdirect.operators.usdirect_operator import UsDirectBaseOperator, utc_time
from usdirect.settings.config import Account, Config

OPERATION = "get_shipments"
STAGE = "shipments"
ORDER_STATUS = "order_status.json"  # PO -> status at US Direct, from the straggler lookups


class UsDirectGetShipmentsOperator(UsDirectBaseOperator):
    """Ask US Direct for the shipments changed in a window, plus per-PO lookups of open POs that
    are overdue (stragglers), and stage them with the looked-up order statuses.

    The window is the run's data interval; a run that is not a backfill starts where the DAG's
    targets last stopped (``usdirect_watermarks``), so a pause is read in full. Returns the counts
    and the window (XCom) for ``UsDirectShipmentsToWarehouseOperator`` and
    ``UsDirectShipmentsToPlatformOperator``. Takes every argument of ``UsDirectBaseOperator``.

    :param window_start: Cover exactly [window_start, window_end) instead: datetimes or ISO 8601
        strings, e.g. ``"{{ data_interval_start }}"``; naive times are UTC. (templated)
    :param window_end: The end of that window. (templated)
    :param overlap_minutes: Ask this much before the window start, for late-indexed changes (default 5).
    :param straggler_age_hours: Look up open POs older than this one by one (default 72).
    :param max_gap_hours: Alert when a run reads more unread time than this (default 336).
    """

    operation = OPERATION
    products = pr.Products(
        reads=(
            "usdirect:GET /v1/shipments",
            "usdirect:GET /v1/orders/{po}",
            "warehouse:" + pr.FULFILLMENT_REQUESTS,
        )
    )
    template_fields: Sequence[str] = (*UsDirectBaseOperator.template_fields, "window_start", "window_end")

    def __init__(
        self,
        *,
        window_start: Any = None,
        window_end: Any = None,
        overlap_minutes: int | None = None,
        straggler_age_hours: int | None = None,
        max_gap_hours: int | None = None,
        **kwargs: Any,
    ) -> None:
        settings = {
            "overlap_minutes": overlap_minutes,
            "straggler_age_hours": straggler_age_hours,
            "max_gap_hours": max_gap_hours,
        }
        super().__init__(operation_settings=settings, **kwargs)
        if (window_start is None) != (window_end is None):
            raise ValueError(f"{self.task_id}: give both window_start and window_end, or neither")
        self.window_start = window_start
        self.window_end = window_end

    def run_window(self) -> tuple[dt.datetime, dt.datetime] | None:
        if self.window_start is None:
            return None
        return utc_time(self.window_start), utc_time(self.window_end)

    def execute_run(self, run: OperationRun) -> dict[str, Any]:
        return fetch_shipments(run)


class UsDirectShipmentsToWarehouseOperator(UsDirectStagedTargetOperator):
    """Upsert the staged shipments by shipment_id and the looked-up order statuses; each PO's
    fulfillment state follows in the view. Moves the DAG's warehouse watermark on to the fetched
    window. ``fetched`` is ``UsDirectGetShipmentsOperator``'s output."""

    operation = OPERATION
    products = pr.Products(tables=(pr.SHIPMENTS, pr.SHIPMENT_ITEMS, pr.REJECTS))

    def execute_run(self, run: OperationRun) -> dict[str, int]:
        return load_warehouse(run, self.fetched or {})


class UsDirectShipmentsToPlatformOperator(UsDirectStagedTargetOperator):
    """POST new shipments, PATCH changed statuses; an unknown fulfillment request fails the task
    with its reason. Once every shipment is delivered the DAG's platform watermark moves on to the
    fetched window. ``fetched`` is ``UsDirectGetShipmentsOperator``'s output."""

    operation = OPERATION
    products = pr.Products(platform=(pr.PLATFORM_SHIPMENTS,))

    def execute_run(self, run: OperationRun) -> dict[str, int]:
        from usdirect.pipelines import shipments

        return deliver_staged_to_platform(
            run, STAGE, "shipment", shipments.deliver_platform, window=self.fetched or {}
        )


def fetch_shipments(run: OperationRun) -> dict[str, Any]:
    """Shipments changed in the run's window (with overlap) plus per-PO straggler lookups; the
    window and the looked-up order statuses travel to the target tasks with the staged batch."""
    from usdirect.hooks.usdirect import UsDirectHook
    from usdirect.mapping import load_template
    from usdirect.pipelines import shipments

    settings = run.settings
    start, end = run.incremental_window(dt.timedelta(hours=settings.straggler_age_hours))
    since = start - dt.timedelta(minutes=settings.overlap_minutes)
    wh = run.warehouse()
    stragglers = shipments.straggler_pos(wh, end, settings.straggler_age_hours) if wh else []
    template = load_template(run.cfg.template_path(run.account, OPERATION))
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


def load_warehouse(run: OperationRun, fetched: dict[str, Any]) -> dict[str, int]:
    """Upsert the staged batch and the order statuses; the warehouse watermark moves on."""
    from usdirect.domain.batch import Batch
    from usdirect.pipelines import shipments

    batch = Batch.read(run.staging(STAGE))
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


def define_get_shipments(cfg: Config, account: Account) -> None:
    """The shipped DAG: fetch_shipments, then load_shipments_warehouse and/or deliver_shipments_platform."""
    wire_targets(
        cfg,
        account,
        UsDirectGetShipmentsOperator(task_id="fetch_shipments", account_id=account.id, from_settings=True),
        UsDirectShipmentsToWarehouseOperator,
        UsDirectShipmentsToPlatformOperator,
        STAGE,
    )

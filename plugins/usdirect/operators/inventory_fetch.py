"""The inventory steps that call US Direct, as public operators: the full feed and the changes API.

Both stage what they download in the run's staging folder and hand counts (and the feed's HTTP
validators, or the window) on by XCom to the mapping operators of ``inventory_map``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from usdirect.domain import products as pr
from usdirect.operators.base import OperationRun
from usdirect.operators.usdirect_operator import UsDirectBaseOperator, utc_time

FULL = "get_inventory"
CHANGES = "get_inventory_changes"
_LOOKBACK = dt.timedelta(days=1)  # a first run of the changes DAG without a data interval


class UsDirectGetInventoryOperator(UsDirectBaseOperator):
    """Download the full US Direct feed (the connection's Feed URL) into the run's staging folder.

    A 304 (unchanged since the last delivered feed) skips the task. A run that reconciles the
    platform downloads unconditionally. Returns the size and the feed's HTTP validators (XCom).
    Takes every argument of ``UsDirectBaseOperator``; the mapping settings are the later steps'.

    :param reconcile: Reconcile the platform in this run (overrides the DAG run's Param).
    :param reconcile_every_days: Reconcile the platform every this many days (default: only on the
        first publish and with ``reconcile``).
    """

    operation = FULL
    products = pr.Products(reads=(pr.USDIRECT_FEED,))

    def __init__(
        self, *, reconcile: bool | None = None, reconcile_every_days: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(operation_settings={"reconcile_every_days": reconcile_every_days}, **kwargs)
        self.reconcile = reconcile

    def run_inputs(self) -> dict[str, Any]:
        return {} if self.reconcile is None else {"reconcile": self.reconcile}

    def execute_run(self, run: OperationRun) -> dict[str, Any]:
        return fetch_feed(run)


class UsDirectGetInventoryChangesOperator(UsDirectBaseOperator):
    """Page ``/v1/inventory`` (price and quantity changes) for a window into the run's staging folder.

    The window is the run's data interval; a run that is not a backfill starts where the DAG's
    targets last stopped, so a pause is read in full. Returns the item count and the window (XCom).
    Takes every argument of ``UsDirectBaseOperator``.

    :param window_start: Cover exactly [window_start, window_end) instead: datetimes or ISO 8601
        strings; naive times are UTC. (templated)
    :param window_end: The end of that window. (templated)
    :param overlap_minutes: Ask this much before the window start, for late-indexed changes (default 5).
    :param max_gap_hours: Alert when a run reads more unread time than this (default 336).
    """

    operation = CHANGES
    products = pr.Products(reads=("usdirect:GET /v1/inventory",))
    template_fields: Sequence[str] = (*UsDirectBaseOperator.template_fields, "window_start", "window_end")

    def __init__(
        self,
        *,
        window_start: Any = None,
        window_end: Any = None,
        overlap_minutes: int | None = None,
        max_gap_hours: int | None = None,
        **kwargs: Any,
    ) -> None:
        settings = {"overlap_minutes": overlap_minutes, "max_gap_hours": max_gap_hours}
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
        return fetch_changes(run)


def reconcile_reason(run: OperationRun) -> str | None:
    """Why this full-feed run reconciles the platform (None: it publishes from the ledger only)."""
    from usdirect.targets.platform.reconcile import reconcile_due

    if "platform" not in run.cfg.targets(run.account):
        return None
    if run.params.get("reconcile"):
        return "the Param reconcile is set"
    now = dt.datetime.now(dt.UTC)
    return reconcile_due(run.state_warehouse(), run.account.id, run.settings.reconcile_every_days, now)


def fetch_feed(run: OperationRun) -> dict[str, Any]:
    """Download the feed into staging; a 304 (unchanged since the last delivered feed) skips the run.

    A run that reconciles the platform downloads unconditionally: the platform may differ from
    the ledger even when the feed has not changed."""
    from airflow.sdk.exceptions import AirflowSkipException

    from usdirect.engine import staging
    from usdirect.hooks.feed import FeedValidators
    from usdirect.hooks.usdirect import UsDirectHook
    from usdirect.targets.warehouse.inventory import get_feed_state

    state = get_feed_state(run.state_warehouse(), run.account.id)
    reconcile = reconcile_reason(run)
    validators = FeedValidators(state.etag, state.last_modified) if state and not reconcile else None
    if reconcile:
        run.record.counts["reconcile"] = reconcile
    with staging.writing(run.staging("inventory", "feed.csv")) as path:
        download = UsDirectHook(run.account.usdirect_conn_id).download_feed(path, validators)
    if download.not_modified:
        run.record.counts["not_modified"] = True
        raise AirflowSkipException(
            "The feed is unchanged since the last delivered feed (HTTP 304): nothing to load or publish."
        )
    run.record.counts["bytes"] = download.bytes
    return {
        "bytes": download.bytes,
        "etag": download.validators.etag,
        "last_modified": download.validators.last_modified,
        "reconcile": reconcile,
    }


def fetch_changes(run: OperationRun) -> dict[str, Any]:
    """Page /v1/inventory from the window start (minus the overlap) into staging; after a pause the
    window starts where the targets last stopped (``OperationRun.incremental_window``)."""
    from usdirect.engine import staging
    from usdirect.engine.transform import write_pages
    from usdirect.hooks.usdirect import UsDirectHook

    start, end = run.incremental_window(_LOOKBACK)
    since = start - dt.timedelta(minutes=run.settings.overlap_minutes)
    hook = UsDirectHook(run.account.usdirect_conn_id)
    with staging.writing(run.staging("changes", "changes.jsonl")) as path:
        items = write_pages(hook.iter_inventory_changes(since), path)
    run.record.counts.update(items=items, since=since.isoformat())
    run.record.rows_in = items
    run.alert_if_long_gap()
    return {
        "items": items,
        "until": end.isoformat(),
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
    }

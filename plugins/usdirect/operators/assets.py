"""Airflow Assets of the operations: each step that writes data has one ``AssetAlias`` outlet, and
adds an event per product it really changed when the run succeeds.

A plain ``Asset`` outlet gets an event on every success, also a 304 or an unchanged feed, which
would wake downstream DAGs for nothing; an alias gets only the events the task adds. The alias also
lets the table's URI come from the warehouse connection when the task runs, not when 200 accounts'
DAGs are parsed. A downstream DAG scheduled on the alias runs from the first event on (Airflow
resolves an alias when it evaluates the schedule); one scheduled on the table's ``Asset`` works
as well, once it knows the URI.

Names: alias ``usdirect.<account>.<operation>.<target>`` (target: ``warehouse``, ``platform`` or
``rejects``); warehouse tables by URI (``usdirect.targets.warehouse.asset_uri``); platform records
``usdirect.<account>.platform.<kind>`` with URI ``x-flxpoint://<account>/<kind>`` (no provider
registers a platform scheme; ``x-`` marks it as custom, as Airflow asks).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from usdirect.domain import products as pr

if TYPE_CHECKING:
    from airflow.sdk import AssetAlias, Context

    from usdirect.operators.base import OperationRun


def step_target(products: pr.Products) -> str | None:
    """What a step delivers to: its alias's last part (None: it produces no data)."""
    if products.platform:
        return "platform"
    if set(products.tables) - {pr.REJECTS}:
        return "warehouse"
    return "rejects" if products.tables else None


def alias_name(account_id: str, operation: str, target: str) -> str:
    return f"usdirect.{account_id}.{operation}.{target}"


def asset_outlets(products: pr.Products, account_id: str, operation: str) -> list[AssetAlias]:
    """The outlets of a step: its alias, or none for a step that produces no data."""
    from airflow.sdk import AssetAlias

    target = step_target(products)
    return [] if target is None else [AssetAlias(alias_name(account_id, operation, target))]


def platform_asset(account_id: str, kind: str) -> tuple[str, str]:
    """(name, URI) of an account's platform records of one kind."""
    return f"usdirect.{account_id}.platform.{kind}", f"x-flxpoint://{account_id}/{kind}"


def event_extra(run: OperationRun, changed: int, window: tuple[Any, Any]) -> dict[str, Any]:
    """What a downstream DAG may want to know: the account, the run, its counts and window."""
    counts = {k: v for k, v in run.record.counts.items() if isinstance(v, int | float | str | bool)}
    return {
        "account": run.account.id,
        "operation": run.operation,
        "run_id": run.run_id,
        "changed": changed,
        "counts": counts,
        "window_start": _iso(window[0]),
        "window_end": _iso(window[1]),
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, dt.datetime) else (str(value) if value else None)


def add_asset_events(
    context: Context,
    outlets: list[Any],
    products: pr.Products,
    run: OperationRun,
    changed: int,
    window: tuple[Any, Any],
) -> int:
    """Add an event to the step's alias for each product it changed; returns how many were added.

    Nothing when nothing changed (a skipped run never gets here), when the step's alias is not
    among its outlets (a DAG that set ``outlets`` itself), or for a target the account lacks.
    """
    from airflow.sdk import Asset, AssetAlias

    target = step_target(products)
    if target is None:
        return 0
    name = alias_name(run.account.id, run.operation, target)
    if not any(isinstance(o, AssetAlias) and o.name == name for o in outlets):
        return 0
    rejected = run.record.rows_rejected or 0
    assets: list[tuple[Asset, int]] = []
    wh = run.warehouse()
    if wh is not None:
        from usdirect.targets.warehouse.asset_uri import table_uri

        for table in products.tables:
            rows = rejected if table == pr.REJECTS else changed
            if rows > 0:
                assets.append((Asset(uri=table_uri(wh, table)), rows))
    if "platform" in run.targets and changed > 0:
        for kind in products.platform:
            asset_name, uri = platform_asset(run.account.id, kind)
            assets.append((Asset(name=asset_name, uri=uri), changed))
    events = context["outlet_events"][AssetAlias(name)]
    for asset, rows in assets:
        events.add(asset, extra=event_extra(run, rows, window))
    return len(assets)

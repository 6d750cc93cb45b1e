"""What Get Shipments and Get Invoice share after the fetch: platform delivery and target wiring.

Both stage one batch, then deliver it to each configured target; when both are configured the
warehouse loads first, because it remembers what the platform already has.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from usdirect.operators.base import operation_run
from usdirect.settings.config import Account, Config


def deliver_staged_to_platform(
    operation: str,
    account_id: str,
    stage: str,
    noun: str,
    deliver: Callable[[Any, Any, Any], dict],
    window: Mapping[str, Any] | None = None,
) -> dict[str, int]:
    """Read the staged batch, send it with ``deliver(platform, batch, warehouse)``, record the counts.

    Records that the platform refuses are counted and fail the task with their reasons, after the
    others were delivered, so a retry sends only what is missing. With the fetch's ``window``
    (a windowed operation), a complete delivery moves the DAG's watermark on for the platform.
    """
    from usdirect.hooks.flxpoint import FlxpointHook
    from usdirect.pipelines.shipments import Batch

    with operation_run(operation, account_id) as run:
        batch = Batch.read(run.staging(stage))
        with FlxpointHook(run.account.flxpoint_conn_id) as platform:
            result = deliver(platform, batch, run.warehouse())
        errors = result.pop("errors")
        run.record.counts.update(result | {"errors": len(errors)})
        run.record.rows_in = batch.parents.num_rows
        run.record.rows_changed = result.get("created", 0) + result.get("status_updated", 0)
        run.record.rows_rejected = len(errors)
        if errors:
            raise RuntimeError(
                f"{len(errors)} {noun}(s) not delivered to the platform: " + "; ".join(errors[:10])
            )
        if window is not None:
            run.record_window("platform", window)
        return result


def wire_targets(
    cfg: Config, account: Account, fetch: Any, load_warehouse: Any, deliver_platform: Any
) -> None:
    """fetch → warehouse load and/or platform delivery, warehouse first when both are targets."""
    fetched = fetch(account.id)
    targets = cfg.targets(account)
    loaded = load_warehouse(account.id, fetched) if "warehouse" in targets else None
    if "platform" in targets:
        delivered = deliver_platform(account.id, fetched)
        if loaded is not None:
            loaded >> delivered

"""What Get Shipments and Get Invoice share after the fetch: platform delivery and target wiring.

Both stage one batch, then deliver it to each configured target; when both are configured the
warehouse loads first, because it remembers what the platform already has.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from usdirect.operators.base import OperationRun
from usdirect.operators.usdirect_operator import UsDirectBaseOperator
from usdirect.settings.config import Account, Config


class UsDirectStagedTargetOperator(UsDirectBaseOperator):
    """Delivers what a fetch operator of the same DAG run staged to one target.

    Give it the same settings arguments as the fetch operator (or both ``from_settings``): the
    staged files are found by DAG and run id under ``staging_url``.

    :param fetched: The fetch operator's output (its XCom, e.g. ``fetch.output``): a windowed
        operation's window travels in it, and passing it orders the two tasks. (templated)
    """

    template_fields: Sequence[str] = (*UsDirectBaseOperator.template_fields, "fetched")

    def __init__(self, *, fetched: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fetched = fetched

    def event_window(self, run: OperationRun) -> tuple[Any, Any]:
        fetched = self.fetched if isinstance(self.fetched, Mapping) else {}
        if fetched.get("window_start"):
            return fetched["window_start"], fetched.get("window_end")
        return super().event_window(run)


def deliver_staged_to_platform(
    run: OperationRun,
    stage: str,
    noun: str,
    deliver: Callable[[Any, Any, Any], dict[str, Any]],
    window: Mapping[str, Any] | None = None,
) -> dict[str, int]:
    """Read the staged batch, send it with ``deliver(platform, batch, warehouse)``, record the counts.

    Records that the platform refuses are counted and fail the task with their reasons, after the
    others were delivered, so a retry sends only what is missing. With the fetch's ``window``
    (a windowed operation), a complete delivery moves the DAG's watermark on for the platform.
    """
    from usdirect.domain.batch import Batch
    from usdirect.hooks.flxpoint import FlxpointHook

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
    cfg: Config,
    account: Account,
    fetch: UsDirectBaseOperator,
    to_warehouse: type[UsDirectStagedTargetOperator],
    to_platform: type[UsDirectStagedTargetOperator],
    stage: str,
) -> None:
    """fetch → ``load_<stage>_warehouse`` and/or ``deliver_<stage>_platform`` (warehouse first when
    both are targets), each one account of the settings file."""
    targets = cfg.targets(account)
    common: dict[str, Any] = {"account_id": account.id, "from_settings": True, "fetched": fetch.output}
    loaded = to_warehouse(task_id=f"load_{stage}_warehouse", **common) if "warehouse" in targets else None
    if "platform" in targets:
        delivered = to_platform(task_id=f"deliver_{stage}_platform", **common)
        if loaded is not None:
            loaded >> delivered

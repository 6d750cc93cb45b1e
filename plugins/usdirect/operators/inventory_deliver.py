"""The inventory steps after the mapping, as public operators: load into the warehouse, publish to
the platform, and (full feed) record the delivered feed's state.

A full feed's load and publish run once per partition of the mapping step's output
(``.partial(...).expand(mapped=map.output)``); the changes run once. The warehouse connection
also keeps the feed state and the publish ledger, even for an account that publishes to the
platform only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from usdirect.domain import products as pr
from usdirect.operators.base import OperationRun
from usdirect.operators.inventory_fetch import CHANGES, FULL
from usdirect.operators.inventory_map import UsDirectInventoryStepOperator, mapped_feed, template
from usdirect.operators.price_guard import alert_if_held, price_rule
from usdirect.operators.usdirect_operator import UsDirectBaseOperator

if TYPE_CHECKING:
    from usdirect.engine.absence import Absence
    from usdirect.engine.partitions import Partition


class UsDirectInventoryTargetOperator(UsDirectInventoryStepOperator):
    """Delivers one partition of the mapped full feed to a target (a subclass per target).

    Takes every argument of ``UsDirectInventoryStepOperator``.

    :param mapped: One entry of ``UsDirectMapInventoryOperator``'s output: map the operator over
        the whole output with ``.partial(...).expand(mapped=map.output)``. (templated)
    :param archive_after_missing_feeds: Archive a SKU the feed lacks only after this many good
        feeds in a row (default 2).
    :param archive_after_missing_hours: ... and, when set, after this many hours.
    :param price_guard: The price anomaly guard's settings: ``enabled``, ``max_change_share``,
        ``cost_floor``, ``confirm_after_feeds`` (default: on, 0.6, 0.05, 2).
    """

    operation = FULL
    template_fields: Sequence[str] = (*UsDirectBaseOperator.template_fields, "mapped")

    def __init__(
        self,
        *,
        mapped: Any = None,
        archive_after_missing_feeds: int | None = None,
        archive_after_missing_hours: float | None = None,
        price_guard: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        settings = {
            "archive_after_missing_feeds": archive_after_missing_feeds,
            "archive_after_missing_hours": archive_after_missing_hours,
            "price_guard": price_guard,
        }
        super().__init__(operation_settings=settings, **kwargs)
        self.mapped = mapped


class UsDirectInventoryToWarehouseOperator(UsDirectInventoryTargetOperator):
    """Apply a partition of the mapped feed to ``usdirect_inventory`` / ``_history`` as one
    transaction; SKUs the feed lacks are archived by the ``Absence`` rule. Returns the counts."""

    products = pr.Products(tables=(pr.INVENTORY, pr.INVENTORY_HISTORY))

    def execute_run(self, run: OperationRun) -> dict[str, int]:
        return load_warehouse(run, dict(self.mapped or {}))


class UsDirectInventoryToPlatformOperator(UsDirectInventoryTargetOperator):
    """Send a partition's changes since the last successful publish (resumable through the
    ledger); a reconciling run first makes the ledger say what the platform really holds.
    Returns the counts, with the SKUs absent from the feed but not archived yet (``missing``)."""

    products = pr.Products(platform=(pr.PLATFORM_INVENTORY,), reads=("platform:GET /inventory/variants",))

    def execute_run(self, run: OperationRun) -> dict[str, Any]:
        return publish_platform(run, dict(self.mapped or {}))


class UsDirectInventoryChangesTargetOperator(UsDirectBaseOperator):
    """Delivers the mapped changes to a target (a subclass per target); once delivered, the DAG's
    watermark of that target moves on to the window. Takes every argument of ``UsDirectBaseOperator``.

    :param mapped: ``UsDirectMapInventoryChangesOperator``'s output (e.g. ``map.output``). (templated)
    :param price_guard: The price anomaly guard's settings, as on the full feed's target steps.
    """

    operation = CHANGES
    template_fields: Sequence[str] = (*UsDirectBaseOperator.template_fields, "mapped")

    def __init__(
        self, *, mapped: Any = None, price_guard: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(operation_settings={"price_guard": price_guard}, **kwargs)
        self.mapped = mapped

    def event_window(self, run: OperationRun) -> tuple[Any, Any]:
        mapped = dict(self.mapped or {})
        return mapped.get("window_start"), mapped.get("window_end")


class UsDirectInventoryChangesToWarehouseOperator(UsDirectInventoryChangesTargetOperator):
    """Apply the mapped changes to ``usdirect_inventory`` / ``_history`` as one transaction."""

    products = pr.Products(tables=(pr.INVENTORY, pr.INVENTORY_HISTORY))

    def execute_run(self, run: OperationRun) -> dict[str, int]:
        counts = load_warehouse(run, dict(self.mapped or {}))
        if "platform" not in run.targets:  # else the publish, which runs after, alerts
            alert_if_held(run)
        return counts


class UsDirectInventoryChangesToPlatformOperator(UsDirectInventoryChangesTargetOperator):
    """Send the changed prices and quantities the platform does not have yet (through the ledger)."""

    products = pr.Products(platform=(pr.PLATFORM_INVENTORY,))

    def execute_run(self, run: OperationRun) -> dict[str, Any]:
        out = publish_platform(run, dict(self.mapped or {}))
        alert_if_held(run)
        return out


class UsDirectRecordFeedStateOperator(UsDirectBaseOperator):
    """Remember the delivered full feed: validators for the next 304, SKU count for the shrink
    guard, its sequence number for the ``Absence`` rule. Runs after every target took the feed, so
    a 304 never hides a feed that a failed run left undelivered.

    While a target holds SKUs absent from this feed but not archived yet, the validators are not
    kept: the next run then downloads the feed again instead of getting a 304, and that download is
    the next good feed that confirms (or undoes) the absence. Takes every argument of
    ``UsDirectBaseOperator``.

    :param mapped: ``UsDirectMapInventoryOperator``'s output (``map.output``). (templated)
    :param delivered: The target operators' outputs (``[load.output, publish.output]``): their
        missing SKUs decide whether the validators are kept. (templated)
    """

    operation = FULL
    template_fields: Sequence[str] = (*UsDirectBaseOperator.template_fields, "mapped", "delivered")

    def __init__(self, *, mapped: Any = None, delivered: Sequence[Any] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mapped = mapped
        self.delivered = list(delivered)

    def execute_run(self, run: OperationRun) -> None:
        record_feed_state(run, self.mapped, self.delivered)


def _absence(run: OperationRun, mapped: dict[str, Any]) -> Absence:
    """The archive rule for this full feed: the settings', or at once when a person vouched for the
    feed with ``allow_shrink``."""
    from usdirect.engine.absence import Absence, archive_at_once

    seq = int(mapped.get("feed_seq") or 0)
    if run.params.get("allow_shrink"):
        return archive_at_once(seq)
    s = run.settings
    return Absence(seq, s.archive_after_missing_feeds, s.archive_after_missing_hours)


def _stage(run: OperationRun) -> str:
    return "inventory" if run.operation == FULL else "changes"


def _note_partition(run: OperationRun, part: Partition | None) -> None:
    if part is not None:
        run.record.counts["partition"] = f"{part.index + 1} of {part.count}"


def load_warehouse(run: OperationRun, mapped: dict[str, Any]) -> dict[str, int]:
    """Apply the mapped rows (a full feed's partition, or the changes) to usdirect_inventory /
    _history as one transaction."""
    from usdirect.engine.partitions import Partition
    from usdirect.targets.warehouse.inventory import load_changes, load_full

    wh = run.warehouse()
    if wh is None:
        raise ValueError(f"{run.record.task_id}: loads into the warehouse, but 'warehouse' is not a target")
    now = dt.datetime.now(dt.UTC)
    part = Partition.of(mapped)
    _note_partition(run, part)
    account_id = run.account.id
    with mapped_feed(run, _stage(run), mapped) as feed:
        if run.operation == FULL:
            absence = _absence(run, mapped)
            counts = load_full(wh, account_id, run.run_id, feed, now, absence, part, price_rule(run))
        else:
            assert isinstance(feed, Path)  # the changes never build on an earlier run's feed
            counts = load_changes(wh, account_id, run.run_id, feed, now, price_rule(run))
    if run.operation == CHANGES:
        run.record_window("warehouse", mapped)
    run.record.counts.update(counts.as_dict())
    run.record.rows_in, run.record.rows_changed = counts.read, counts.changed
    return counts.as_dict()


def publish_platform(run: OperationRun, mapped: dict[str, Any]) -> dict[str, Any]:
    """Send what changed since the last successful publish (resumable through the ledger); a
    reconciling run first makes the ledger say what the platform really holds."""
    from usdirect.engine import staging
    from usdirect.engine.partitions import Partition
    from usdirect.hooks.flxpoint import FlxpointHook
    from usdirect.targets.platform.inventory import plan_publish, publish
    from usdirect.targets.platform.reconcile import reconcile_ledger

    account_id = run.account.id
    wh = run.state_warehouse()
    writable = frozenset(template(run).writable_fields())
    full = run.operation == FULL
    part = Partition.of(mapped)
    _note_partition(run, part)
    client = FlxpointHook(run.account.flxpoint_conn_id)
    with mapped_feed(run, _stage(run), mapped) as feed, staging.scratch() as tmp:
        if full and mapped.get("reconcile"):
            intent = run.warehouse()  # what the warehouse decided; None for a platform-only account
            found = reconcile_ledger(
                client, wh, account_id, run.run_id, feed, tmp, intent=intent, partition=part
            )
            run.record.counts["reconciled"] = found.as_dict()
        absence = _absence(run, mapped) if full else None
        # SKUs discontinued on first sight are sent archived in case the platform has them
        # (after a reconcile the ledger already knows which it lacks).
        plan = plan_publish(
            wh,
            account_id,
            feed,
            tmp,
            writable,
            full=full,
            absence=absence,
            archive_unseen=full,
            partition=part,
            guard=price_rule(run),
            run_id=run.run_id,
        )
        run.record.counts.update(planned_calls=plan.calls, unchanged=plan.unchanged, deferred=plan.deferred)
        counts = publish(client, wh, account_id, run.run_id, plan, writable, mapped=feed if full else None)
    if not full:
        run.record_window("platform", mapped)
    out = counts.as_dict() | {
        "unchanged": plan.unchanged,
        "deferred": plan.deferred,
        "missing": plan.missing,
        "held": plan.held,
    }
    run.record.counts.update(out)
    run.record.rows_changed = counts.updated + counts.created + counts.archived
    return out


def _outputs(delivered: Any) -> list[dict[str, Any]]:
    """A target step's XCom: one dict, or one per partition (a mapped task's outputs)."""
    if delivered is None:
        return []
    if isinstance(delivered, dict):
        return [delivered]
    return [d for d in delivered if d]


def record_feed_state(
    run: OperationRun, mapped: list[dict[str, Any]] | dict[str, Any], delivered: list[Any]
) -> None:
    """Save the feed state; ``mapped`` is the mapping step's list (one entry per partition, all with
    the whole feed's counts); ``delivered`` holds each target step's outputs, one per partition,
    whose missing SKUs add up."""
    from usdirect.targets.warehouse.inventory import FeedState, save_feed_state

    feed = mapped[0] if isinstance(mapped, list) else mapped  # every entry has the feed's counts
    missing = max((sum(int(d.get("missing") or 0) for d in _outputs(x)) for x in delivered), default=0)
    # While prices are held, the next run downloads the feed again (no 304): that download is what
    # confirms them, or what an accept_held run releases.
    held = alert_if_held(run)
    fresh = missing or held
    state = FeedState(
        etag=None if fresh else feed.get("etag"),
        last_modified=None if fresh else feed.get("last_modified"),
        sku_count=int(feed["skus"]),
        run_id=run.run_id,
        loaded_at=dt.datetime.now(dt.UTC),
        feed_seq=int(feed.get("feed_seq") or 0),
    )
    save_feed_state(run.state_warehouse(), run.account.id, state)
    run.record.counts.update(skus=state.sku_count, feed_seq=state.feed_seq, missing=missing)

"""Get Inventory tasks: the full feed (``define_get_inventory``) and the changes API
(``define_get_inventory_changes``).

Full feed: fetch_feed (``UsDirectGetInventoryOperator``, the step that calls US Direct) → map_feed
(template, duplicates, guard, then slices above partition_rows) → load_inventory_warehouse →
publish_inventory_platform (both mapped over the slices, one task instance for a smaller feed;
see ``inventory_partitions``) → record_feed_state. Files move through the run's staging
location; XCom carries counts and the feed's HTTP validators only. The validators are recorded
by the last task, after every target took the feed, so a 304 never hides a feed that a failed
run left undelivered. The warehouse connection also keeps the feed state and the publish ledger,
even for an account that publishes to the platform only. The TaskFlow tasks here read the
account from the settings file.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import task

from usdirect.operators.base import OperationRun, operation_run
from usdirect.operators.inventory_fetch import (
    CHANGES,
    FULL,
    UsDirectGetInventoryChangesOperator,
    UsDirectGetInventoryOperator,
)
from usdirect.settings.config import Account, Config

if TYPE_CHECKING:
    from airflow.sdk import XComArg

    from usdirect.engine.absence import Absence
    from usdirect.engine.partitions import Partition
    from usdirect.engine.reuse import MappedFeed
    from usdirect.engine.transform import TransformResult
    from usdirect.mapping import Template


def _template(run: OperationRun) -> Template:
    from usdirect.mapping import load_template

    return load_template(run.cfg.template_path(run.account, run.operation))


def _rejects(run: OperationRun, stage: str, read: int) -> None:
    """Keep the stage's rejects in ``usdirect_rejects`` (when the warehouse is a target; a retry
    replaces its earlier attempt), then stop the run if too many rows were rejected."""
    import pyarrow.parquet as pq

    from usdirect.engine import staging
    from usdirect.mapping import check_reject_share
    from usdirect.targets.warehouse.audit import write_rejects

    with staging.reading(run.staging(stage, "rejects.parquet")) as path:
        table = pq.read_table(path)
    wh = run.warehouse()
    if wh is not None:
        with wh.connect() as conn:
            write_rejects(wh, conn, run.run_id, table)
    check_reject_share(read, table, run.settings.max_reject_share)


def _base_run(run: OperationRun, last_good: str | None) -> str | None:
    """The run whose complete mapped feed this run may build on: the one the last delivered run
    built on (or that run itself). Never this run: it is about to replace its own files."""
    if last_good is None or last_good == run.run_id:
        return None
    manifest = run.staging_of(last_good, "inventory", "feed.json")
    if not manifest.exists():
        return None
    base = json.loads(manifest.read_text()).get("base_run")
    return base if base and base != run.run_id else None


@contextmanager
def _optional(src: Any) -> Iterator[Path | None]:
    """A staged file as a local path, or None when there is none (or it has been cleaned up)."""
    from usdirect.engine import staging

    if src is None or not src.exists():
        yield None
        return
    with staging.reading(src) as path:
        yield path


@contextmanager
def _mapped_feed(run: OperationRun, stage: str, mapped: dict[str, Any]) -> Iterator[Path | MappedFeed]:
    """The mapped feed of ``map_feed``/``map_changes`` as local files: one file (a partition's, or
    the whole feed's), or the freshly mapped rows plus the complete feed of an earlier run that they
    build on."""
    from usdirect.engine import staging
    from usdirect.engine.partitions import Partition
    from usdirect.engine.reuse import MappedFeed

    part = Partition.of(mapped)
    if part is not None:
        with staging.reading(run.staging(stage, part.file_name())) as path:
            yield path
        return
    with ExitStack() as files:
        fresh = files.enter_context(staging.reading(run.staging(stage, "mapped.parquet")))
        base_run = mapped.get("base_run")
        if not base_run:
            yield fresh
            return
        base = files.enter_context(staging.reading(run.staging_of(base_run, stage, "mapped.parquet")))
        dropped = files.enter_context(staging.reading(run.staging(stage, "dropped.parquet")))
        yield MappedFeed(fresh, base, dropped, mapped["base_id"])


def _absence(run: OperationRun, mapped: dict[str, Any]) -> Absence:
    """The archive rule for this full feed: the settings', or at once when a person vouched for the
    feed with ``allow_shrink``."""
    from usdirect.engine.absence import Absence, archive_at_once

    seq = int(mapped.get("feed_seq") or 0)
    if run.params.get("allow_shrink"):
        return archive_at_once(seq)
    s = run.settings
    return Absence(seq, s.archive_after_missing_feeds, s.archive_after_missing_hours)


def _partitions(run: OperationRun, out: dict[str, Any]) -> list[dict[str, Any]]:
    """The feed as the list the load and publish tasks are mapped over: one entry for the whole
    feed, or (above ``partition_rows`` SKUs) one per slice, whose file is written here."""
    from usdirect.engine import staging
    from usdirect.engine.partitions import Partition, partition_count, write_partitions
    from usdirect.engine.reuse import feed_source

    count = partition_count(int(out["skus"]), run.settings.partition_rows)
    if count == 1:
        return [{**out, "partition": None}]
    parts = [Partition(i, count) for i in range(count)]
    with ExitStack() as files:
        feed = files.enter_context(_mapped_feed(run, "inventory", out))
        dest = {
            p.index: files.enter_context(staging.writing(run.staging("inventory", p.file_name())))
            for p in parts
        }
        rows = write_partitions(feed_source(feed), count, dest)
    run.record.counts["partition_skus"] = rows
    return [{**out, "partition": p.as_dict(), "partition_skus": n} for p, n in zip(parts, rows, strict=True)]


def _note_partition(run: OperationRun, part: Partition | None) -> None:
    if part is not None:
        run.record.counts["partition"] = f"{part.index + 1} of {part.count}"


def _outputs(delivered: Any) -> list[dict[str, Any]]:
    """A target task's XCom: one dict, or one per partition (a mapped task's outputs)."""
    if delivered is None:
        return []
    if isinstance(delivered, dict):
        return [delivered]
    return [d for d in delivered if d]


def _transformed(run: OperationRun, result: TransformResult) -> None:
    run.record.counts.update(result.as_dict())
    run.record.rows_in, run.record.rows_out = result.read, result.skus
    run.record.rows_rejected = result.rejected


# --------------------------------------------------------------------------------------------- full feed


@task(task_id="map_feed")
def map_feed(account_id: str, fetched: dict[str, Any]) -> list[dict[str, Any]]:
    """Map the feed, resolve duplicate SKUs, then guard (rejects, empty or shrunken feed) on the
    whole feed; only then split a large feed into partitions. Returns what the load and publish
    tasks are mapped over (``_partitions``)."""
    from usdirect.engine import staging
    from usdirect.engine.guard import check_feed_size
    from usdirect.engine.transform import transform_feed
    from usdirect.targets.warehouse.inventory import get_feed_state

    with operation_run(FULL, account_id) as run:
        template = _template(run)
        state = get_feed_state(run.state_warehouse(), account_id)
        base_run = _base_run(run, state.run_id if state else None)
        with (
            staging.reading(run.staging("inventory", "feed.csv")) as feed,
            staging.writing(run.staging("inventory", "mapped.parquet")) as mapped,
            staging.writing(run.staging("inventory", "dropped.parquet")) as dropped,
            staging.writing(run.staging("inventory", "rejects.parquet")) as rejects,
            _optional(run.staging_of(base_run, "inventory", "mapped.parquet") if base_run else None) as base,
        ):
            result = transform_feed(feed, template, mapped, rejects, dropped=dropped, base=base)
        based_on = base_run if result.reused else None
        run.staging("inventory", "feed.json").write_text(json.dumps({"base_run": based_on or run.run_id}))
        _transformed(run, result)
        _rejects(run, "inventory", result.read)
        note = check_feed_size(
            result.skus,
            state.sku_count if state else None,
            run.settings.max_shrink_share,
            bool(run.params.get("allow_shrink", False)),
        )
        if note:
            run.record.counts["shrink_override"] = note
        out = {
            **fetched,
            "skus": result.skus,
            "base_run": based_on,
            "base_id": result.base_id,
            "feed_seq": (state.feed_seq if state else 0) + 1,  # the Absence rule's clock
        }
        return _partitions(run, out)


@task(task_id="load_inventory_warehouse", pool="default_pool")
def load_inventory_warehouse(
    account_id: str, mapped: dict[str, Any], stage: str = "inventory"
) -> dict[str, int]:
    """Apply the mapped rows (a full feed's partition, or the changes) to usdirect_inventory /
    _history as one transaction."""
    from usdirect.engine.partitions import Partition
    from usdirect.targets.warehouse.inventory import load_changes, load_full

    operation = FULL if stage == "inventory" else CHANGES
    with operation_run(operation, account_id) as run:
        wh = run.warehouse()
        assert wh is not None  # the task exists only when 'warehouse' is a target
        now = dt.datetime.now(dt.UTC)
        part = Partition.of(mapped)
        _note_partition(run, part)
        with _mapped_feed(run, stage, mapped) as feed:
            if operation == FULL:
                counts = load_full(wh, account_id, run.run_id, feed, now, _absence(run, mapped), part)
            else:
                assert isinstance(feed, Path)  # the changes never build on an earlier run's feed
                counts = load_changes(wh, account_id, run.run_id, feed, now)
        if operation == CHANGES:
            run.record_window("warehouse", mapped)
        run.record.counts.update(counts.as_dict())
        run.record.rows_in, run.record.rows_changed = counts.read, counts.changed
        return counts.as_dict()


@task(task_id="publish_inventory_platform")
def publish_inventory_platform(
    account_id: str, mapped: dict[str, Any], stage: str = "inventory"
) -> dict[str, int]:
    """Send what changed since the last successful publish (resumable through the ledger); a
    reconciling run first makes the ledger say what the platform really holds."""
    from usdirect.engine import staging
    from usdirect.engine.partitions import Partition
    from usdirect.hooks.flxpoint import FlxpointHook
    from usdirect.targets.platform.inventory import plan_publish, publish
    from usdirect.targets.platform.reconcile import reconcile_ledger

    operation = FULL if stage == "inventory" else CHANGES
    with operation_run(operation, account_id) as run:
        wh = run.state_warehouse()
        writable = frozenset(_template(run).writable_fields())
        full = operation == FULL
        part = Partition.of(mapped)
        _note_partition(run, part)
        client = FlxpointHook(run.account.flxpoint_conn_id)
        with _mapped_feed(run, stage, mapped) as feed, staging.scratch() as tmp:
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
            )
            run.record.counts.update(
                planned_calls=plan.calls, unchanged=plan.unchanged, deferred=plan.deferred
            )
            counts = publish(
                client,
                wh,
                account_id,
                run.run_id,
                plan,
                writable,
                mapped=feed if full else None,
            )
        if not full:
            run.record_window("platform", mapped)
        out = counts.as_dict() | {
            "unchanged": plan.unchanged,
            "deferred": plan.deferred,
            "missing": plan.missing,
        }
        run.record.counts.update(out)
        run.record.rows_changed = counts.updated + counts.created + counts.archived
        return out


@task(task_id="record_feed_state", pool="default_pool")
def record_feed_state(
    account_id: str, mapped: list[dict[str, Any]] | dict[str, Any], delivered: list[Any]
) -> None:
    """Remember the delivered feed: validators for the next 304, SKU count for the shrink guard,
    its sequence number for the ``Absence`` rule.

    While a target holds SKUs absent from this feed but not archived yet, the validators are not
    kept: the next run then downloads the feed again instead of getting a 304, and that download
    is the next good feed that confirms (or undoes) the absence. ``mapped`` is ``map_feed``'s
    list (one entry per partition, all with the whole feed's counts); ``delivered`` holds each
    target task's outputs, one per partition, whose missing SKUs add up.
    """
    from usdirect.targets.warehouse.inventory import FeedState, save_feed_state

    with operation_run(FULL, account_id) as run:
        feed = mapped[0] if isinstance(mapped, list) else mapped  # every entry has the feed's counts
        missing = max((sum(int(d.get("missing") or 0) for d in _outputs(x)) for x in delivered), default=0)
        state = FeedState(
            etag=None if missing else feed.get("etag"),
            last_modified=None if missing else feed.get("last_modified"),
            sku_count=int(feed["skus"]),
            run_id=run.run_id,
            loaded_at=dt.datetime.now(dt.UTC),
            feed_seq=int(feed.get("feed_seq") or 0),
        )
        save_feed_state(run.state_warehouse(), account_id, state)
        run.record.counts.update(skus=state.sku_count, feed_seq=state.feed_seq, missing=missing)


def _upstream(output: XComArg) -> Any:
    """An upstream task's output as a TaskFlow argument: the task receives the value it resolves to."""
    return output


def _deliver(cfg: Config, account: Account, mapped: Any, stage: str) -> list[Any]:
    """Target tasks in order (warehouse first: the platform publish must not race its DuckDB file)."""
    targets = cfg.targets(account)
    tasks: list[Any] = []
    if "warehouse" in targets:
        load = load_inventory_warehouse
        tasks.append(
            load.partial(account_id=account.id, stage=stage).expand(mapped=mapped)
            if stage == "inventory"  # one task instance per partition of the full feed
            else load(account.id, mapped, stage=stage)
        )
    if "platform" in targets:
        pub = publish_inventory_platform
        published = (
            pub.partial(account_id=account.id, stage=stage).expand(mapped=mapped)
            if stage == "inventory"
            else pub(account.id, mapped, stage=stage)
        )
        if tasks:
            tasks[-1] >> published
        tasks.append(published)
    return tasks


def define_get_inventory(cfg: Config, account: Account) -> None:
    """The shipped DAG: fetch_feed (the public operator) → map_feed → load/publish per partition →
    record_feed_state (TaskFlow tasks of this account of the settings file)."""
    fetch = UsDirectGetInventoryOperator(task_id="fetch_feed", account_id=account.id, from_settings=True)
    mapped = map_feed(account.id, _upstream(fetch.output))
    delivered = _deliver(cfg, account, mapped, "inventory")
    record_feed_state(account.id, _upstream(mapped), delivered)


# --------------------------------------------------------------------------------------------- changes


@task(task_id="map_changes")
def map_changes(account_id: str, fetched: dict[str, Any]) -> dict[str, Any]:
    """Map the changed rows of the window; rows updated after the window end wait for their run."""
    from usdirect.engine import staging
    from usdirect.engine.transform import read_pages, transform_changes

    with operation_run(CHANGES, account_id) as run:
        until = dt.datetime.fromisoformat(fetched["until"])
        with (
            staging.reading(run.staging("changes", "changes.jsonl")) as pages,
            staging.writing(run.staging("changes", "mapped.parquet")) as mapped,
            staging.writing(run.staging("changes", "rejects.parquet")) as rejects,
        ):
            result = transform_changes(read_pages(pages), _template(run), mapped, rejects, until)
        _transformed(run, result)
        _rejects(run, "changes", result.read)
        return {**fetched, "skus": result.skus}


def define_get_inventory_changes(cfg: Config, account: Account) -> None:
    """The shipped DAG: fetch_changes (the public operator) → map_changes → load and/or publish."""
    fetch = UsDirectGetInventoryChangesOperator(
        task_id="fetch_changes", account_id=account.id, from_settings=True
    )
    mapped = map_changes(account.id, _upstream(fetch.output))
    _deliver(cfg, account, mapped, "changes")

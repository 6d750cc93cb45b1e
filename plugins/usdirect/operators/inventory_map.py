"""The inventory mapping step as public operators: the full feed and the changes.

They read what ``inventory_fetch``'s operators staged, map it with the template, keep the rejects
and guard the feed, and stage the mapped rows for the load and publish operators
(``inventory_deliver``). A large full feed is split into partitions here, after the guard saw the
whole feed; the XCom is the list the load and publish operators are mapped over.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from usdirect.domain import products as pr
from usdirect.operators.base import OperationRun
from usdirect.operators.inventory_fetch import CHANGES, FULL
from usdirect.operators.usdirect_operator import UsDirectBaseOperator

if TYPE_CHECKING:
    from usdirect.engine.reuse import MappedFeed
    from usdirect.engine.transform import TransformResult
    from usdirect.mapping import Template


class UsDirectInventoryStepOperator(UsDirectBaseOperator):
    """A Get Inventory step after the fetch: takes an upstream step's output and the person's say.

    Give every step of a run the same settings arguments (or all ``from_settings``): the staged
    files are found by DAG and run id under ``staging_url``.

    :param allow_shrink: Accept a feed the shrink guard would stop, and archive the SKUs it lacks
        at once (overrides the DAG run's Param; full feed only).
    """

    def __init__(self, *, allow_shrink: bool | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.allow_shrink = allow_shrink

    def run_inputs(self) -> dict[str, Any]:
        return {} if self.allow_shrink is None else {"allow_shrink": self.allow_shrink}


class UsDirectMapInventoryOperator(UsDirectInventoryStepOperator):
    """Map the staged full feed, resolve duplicate SKUs, then guard the whole feed (rejects, empty
    or shrunken feed); only then split a large feed into partitions.

    Returns the list ``UsDirectInventoryToWarehouseOperator`` and
    ``UsDirectInventoryToPlatformOperator`` are mapped over (XCom): one entry for the whole feed,
    or one per slice. Takes every argument of ``UsDirectInventoryStepOperator``.

    :param fetched: ``UsDirectGetInventoryOperator``'s output (e.g. ``fetch.output``). (templated)
    :param max_reject_share: Stop the run when more of the feed's rows are rejected (default 0.05).
    :param max_shrink_share: Stop the run when the feed has this share fewer SKUs than the last
        delivered one (default 0.20).
    :param partition_rows: Load and publish a feed of more SKUs in slices of about this many, one
        mapped task instance each (default 2,000,000).
    """

    operation = FULL
    products = pr.Products(tables=(pr.REJECTS,))
    template_fields: Sequence[str] = (*UsDirectBaseOperator.template_fields, "fetched")

    def __init__(
        self,
        *,
        fetched: Any = None,
        max_reject_share: float | None = None,
        max_shrink_share: float | None = None,
        partition_rows: int | None = None,
        **kwargs: Any,
    ) -> None:
        settings = {
            "max_reject_share": max_reject_share,
            "max_shrink_share": max_shrink_share,
            "partition_rows": partition_rows,
        }
        super().__init__(operation_settings=settings, **kwargs)
        self.fetched = fetched

    def execute_run(self, run: OperationRun) -> list[dict[str, Any]]:
        return map_feed(run, dict(self.fetched or {}))


class UsDirectMapInventoryChangesOperator(UsDirectBaseOperator):
    """Map the staged changes of the window; rows updated after the window end wait for their run.

    Returns the counts and the window (XCom) for ``UsDirectInventoryChangesToWarehouseOperator``
    and ``UsDirectInventoryChangesToPlatformOperator``. Takes every argument of
    ``UsDirectBaseOperator``.

    :param fetched: ``UsDirectGetInventoryChangesOperator``'s output (e.g. ``fetch.output``). (templated)
    :param max_reject_share: Stop the run when more of the changed rows are rejected (default 0.05).
    """

    operation = CHANGES
    products = pr.Products(tables=(pr.REJECTS,))
    template_fields: Sequence[str] = (*UsDirectBaseOperator.template_fields, "fetched")

    def __init__(self, *, fetched: Any = None, max_reject_share: float | None = None, **kwargs: Any) -> None:
        super().__init__(operation_settings={"max_reject_share": max_reject_share}, **kwargs)
        self.fetched = fetched

    def execute_run(self, run: OperationRun) -> dict[str, Any]:
        return map_changes(run, dict(self.fetched or {}))


def template(run: OperationRun) -> Template:
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
def mapped_feed(run: OperationRun, stage: str, mapped: dict[str, Any]) -> Iterator[Path | MappedFeed]:
    """The mapped feed of a mapping step as local files: one file (a partition's, or the whole
    feed's), or the freshly mapped rows plus the complete feed of an earlier run that they build on."""
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


def _partitions(run: OperationRun, out: dict[str, Any]) -> list[dict[str, Any]]:
    """The feed as the list the load and publish steps are mapped over: one entry for the whole
    feed, or (above ``partition_rows`` SKUs) one per slice, whose file is written here."""
    from usdirect.engine import staging
    from usdirect.engine.partitions import Partition, partition_count, write_partitions
    from usdirect.engine.reuse import feed_source

    count = partition_count(int(out["skus"]), run.settings.partition_rows)
    if count == 1:
        return [{**out, "partition": None}]
    parts = [Partition(i, count) for i in range(count)]
    with ExitStack() as files:
        feed = files.enter_context(mapped_feed(run, "inventory", out))
        dest = {
            p.index: files.enter_context(staging.writing(run.staging("inventory", p.file_name())))
            for p in parts
        }
        rows = write_partitions(feed_source(feed), count, dest)
    run.record.counts["partition_skus"] = rows
    return [{**out, "partition": p.as_dict(), "partition_skus": n} for p, n in zip(parts, rows, strict=True)]


def _transformed(run: OperationRun, result: TransformResult) -> None:
    run.record.counts.update(result.as_dict())
    run.record.rows_in, run.record.rows_out = result.read, result.skus
    run.record.rows_rejected = result.rejected


def map_feed(run: OperationRun, fetched: dict[str, Any]) -> list[dict[str, Any]]:
    """Map the feed, resolve duplicate SKUs, then guard (rejects, empty or shrunken feed) on the
    whole feed; only then split a large feed into partitions (``_partitions``)."""
    from usdirect.engine import staging
    from usdirect.engine.guard import check_feed_size
    from usdirect.engine.transform import transform_feed
    from usdirect.targets.warehouse.inventory import get_feed_state

    tmpl = template(run)
    state = get_feed_state(run.state_warehouse(), run.account.id)
    base_run = _base_run(run, state.run_id if state else None)
    with (
        staging.reading(run.staging("inventory", "feed.csv")) as feed,
        staging.writing(run.staging("inventory", "mapped.parquet")) as mapped,
        staging.writing(run.staging("inventory", "dropped.parquet")) as dropped,
        staging.writing(run.staging("inventory", "rejects.parquet")) as rejects,
        _optional(run.staging_of(base_run, "inventory", "mapped.parquet") if base_run else None) as base,
    ):
        result = transform_feed(feed, tmpl, mapped, rejects, dropped=dropped, base=base)
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


def map_changes(run: OperationRun, fetched: dict[str, Any]) -> dict[str, Any]:
    """Map the changed rows of the window; rows updated after the window end wait for their run."""
    from usdirect.engine import staging
    from usdirect.engine.transform import read_pages, transform_changes

    until = dt.datetime.fromisoformat(fetched["until"])
    with (
        staging.reading(run.staging("changes", "changes.jsonl")) as pages,
        staging.writing(run.staging("changes", "mapped.parquet")) as mapped,
        staging.writing(run.staging("changes", "rejects.parquet")) as rejects,
    ):
        result = transform_changes(read_pages(pages), template(run), mapped, rejects, until)
    _transformed(run, result)
    _rejects(run, "changes", result.read)
    return {**fetched, "skus": result.skus}

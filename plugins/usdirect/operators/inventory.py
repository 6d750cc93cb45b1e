"""The shipped Get Inventory DAGs, built from the public operators: the full feed
(``define_get_inventory``) and the changes API (``define_get_inventory_changes``).

Full feed: fetch_feed → map_feed (template, duplicates, guard, then slices above partition_rows)
→ load_inventory_warehouse → publish_inventory_platform (both mapped over the slices, one task
instance for a smaller feed; see ``inventory_partitions``) → record_feed_state. Files move through
the run's staging location; XCom carries counts and the feed's HTTP validators only. The
validators are recorded by the last task, after every target took the feed, so a 304 never hides
a feed that a failed run left undelivered. Every task is one account of the settings file
(``from_settings``); the operators live in ``inventory_fetch``, ``inventory_map`` and
``inventory_deliver``.
"""

from __future__ import annotations

from typing import Any

from usdirect.operators.inventory_deliver import (
    UsDirectInventoryChangesToPlatformOperator,
    UsDirectInventoryChangesToWarehouseOperator,
    UsDirectInventoryToPlatformOperator,
    UsDirectInventoryToWarehouseOperator,
    UsDirectRecordFeedStateOperator,
)
from usdirect.operators.inventory_fetch import (
    UsDirectGetInventoryChangesOperator,
    UsDirectGetInventoryOperator,
)
from usdirect.operators.inventory_map import UsDirectMapInventoryChangesOperator, UsDirectMapInventoryOperator
from usdirect.settings.config import Account, Config

# Tasks that call no API run in default_pool instead of the account's pool.
_NO_API = "default_pool"


def _full_feed_targets(cfg: Config, account: Account, mapped: Any) -> list[Any]:
    """Load and publish, each mapped over the feed's partitions; the warehouse first (the platform
    publish must not race its DuckDB file)."""
    targets = cfg.targets(account)
    common: dict[str, Any] = {"account_id": account.id, "from_settings": True}
    tasks: list[Any] = []
    if "warehouse" in targets:
        tasks.append(
            UsDirectInventoryToWarehouseOperator.partial(
                task_id="load_inventory_warehouse", pool=_NO_API, **common
            ).expand(mapped=mapped)
        )
    if "platform" in targets:
        published = UsDirectInventoryToPlatformOperator.partial(
            task_id="publish_inventory_platform", **common
        ).expand(mapped=mapped)
        if tasks:
            tasks[-1] >> published
        tasks.append(published)
    return tasks


def define_get_inventory(cfg: Config, account: Account) -> None:
    """The shipped DAG: fetch_feed → map_feed → load/publish per partition → record_feed_state."""
    common: dict[str, Any] = {"account_id": account.id, "from_settings": True}
    fetch = UsDirectGetInventoryOperator(task_id="fetch_feed", **common)
    mapping = UsDirectMapInventoryOperator(task_id="map_feed", fetched=fetch.output, **common)
    delivered = _full_feed_targets(cfg, account, mapping.output)
    UsDirectRecordFeedStateOperator(
        task_id="record_feed_state",
        mapped=mapping.output,
        delivered=[t.output for t in delivered],
        pool=_NO_API,
        **common,
    )


def define_get_inventory_changes(cfg: Config, account: Account) -> None:
    """The shipped DAG: fetch_changes → map_changes → load and/or publish (the warehouse first)."""
    common: dict[str, Any] = {"account_id": account.id, "from_settings": True}
    fetch = UsDirectGetInventoryChangesOperator(task_id="fetch_changes", **common)
    mapping = UsDirectMapInventoryChangesOperator(task_id="map_changes", fetched=fetch.output, **common)
    targets = cfg.targets(account)
    loaded = (
        UsDirectInventoryChangesToWarehouseOperator(
            task_id="load_inventory_warehouse", mapped=mapping.output, pool=_NO_API, **common
        )
        if "warehouse" in targets
        else None
    )
    if "platform" in targets:
        published = UsDirectInventoryChangesToPlatformOperator(
            task_id="publish_inventory_platform", mapped=mapping.output, **common
        )
        if loaded is not None:
            loaded >> published

"""The price anomaly guard inside a publish plan: the last good prices are the publish ledger's.

For a platform-only account the ledger is all there is; for an account that also loads the
warehouse, the load ran first in the same run and its decisions are followed (see
``usdirect.engine.price_guard``). The held changes are written in the plan's transaction, before
anything is sent.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from usdirect.domain.held_changes import PriceRule
from usdirect.engine.partitions import Partition
from usdirect.engine.price_guard import PRICES, decide, guarded_sql, held_count, new_sku_filter
from usdirect.targets.warehouse.held_changes import ENGINE_HELD, read_held, write_decisions
from usdirect.targets.warehouse.sql import Warehouse

_FEED = "_usd_pub_feed"


def guard_publish(
    wh: Warehouse,
    conn: Any,
    engine: Any,
    account: str,
    rule: PriceRule,
    run_id: str,
    now: dt.datetime,
    source: str,
    full: bool,
    partition: Partition | None,
) -> int:
    """Make ``_usd_pub`` the feed ``source`` as the guard lets it through, compared with the ledger
    (``_usd_ledger``); returns how many SKUs are held."""
    read_held(wh, conn, engine, account, run_id, partition)
    engine.execute(f"CREATE OR REPLACE TEMP VIEW {_FEED} AS SELECT * FROM {source}")
    differs = " OR ".join(f"p.{c} IS DISTINCT FROM l.{c}" for c in PRICES)
    was_held = f"p.sku IN (SELECT sku FROM {ENGINE_HELD})"
    if full:
        where = f"(l.sku IS NULL AND {new_sku_filter(rule, 'p')}) OR {differs} OR {was_held}"
    else:  # the changes update published SKUs only, and only with newer values
        newer = "(l.source_updated_at IS NULL OR p.source_updated_at > l.source_updated_at)"
        where = f"l.sku IS NOT NULL AND {newer} AND ({differs} OR {was_held})"
    candidates = (
        f"SELECT p.sku, p.cost, p.msrp, p.map FROM {_FEED} p LEFT JOIN _usd_ledger l ON l.sku = p.sku "
        f"WHERE {where}"
    )
    decide(engine, rule, candidates, "SELECT sku, cost, msrp, map FROM _usd_ledger", ENGINE_HELD, run_id)
    write_decisions(wh, conn, engine, account, run_id, now)
    held = held_count(engine)
    if held:
        engine.execute(f"CREATE OR REPLACE TEMP VIEW _usd_pub AS {guarded_sql(f'SELECT * FROM {_FEED}')}")
    return held

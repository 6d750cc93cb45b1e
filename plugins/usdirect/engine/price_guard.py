"""The price anomaly guard's decision, as one DuckDB statement over the rows a target would write.

Each target compares the new prices with the last good ones it holds (the live warehouse row, or
the publish ledger for a platform-only account) and with the held changes (open ones, and those
this run resolved already). Only changed rows are compared, so a re-sync of a large catalog pays
for its delta, not for the catalog.

A decision is made once per run and SKU: the second target of a run (or a retried task) finds the
held change this run already saw and decides the same (``times_seen`` counts runs, not tasks).
"""

from __future__ import annotations

from typing import Any

from usdirect.domain.held_changes import PriceRule, Reason, Resolution
from usdirect.engine.base import sql_literal

GUARD = "_usd_guard"

# Decisions: HOLD keeps the last good prices; ACCEPT and CONFIRM let the new prices through and
# resolve the held change; CLEAR resolves a held change whose SKU is fine again; RELEASE and PASS
# follow what this run decided earlier (nothing to write).
HOLD, ACCEPT, CONFIRM, CLEAR, RELEASE, PASS = "hold", "accept", "confirm", "clear", "release", "pass"
WRITES = (HOLD, ACCEPT, CONFIRM, CLEAR)
PRICES = ("cost", "msrp", "map")


def _in_list(skus: frozenset[str]) -> str:
    return f"IN ({', '.join(sql_literal(s) for s in sorted(skus))})" if skus else "IN (NULL)"


def reasons_sql(rule: PriceRule) -> str:
    """Reason codes of a candidate row ``c`` (new values, ``old_*``, ``known``), or NULL when fine.

    A rule about a value only fires when that value is new: a SKU a person accepted below the floor
    is not held again while its cost stays put.
    """
    share, floor = float(rule.max_change_share), float(rule.cost_floor)
    msrp_pair = "(NOT c.known OR c.msrp IS DISTINCT FROM c.old_msrp"
    parts = (
        f"CASE WHEN c.old_cost > 0 AND c.cost < c.old_cost * {1 - share} THEN '{Reason.COST_DROP}' END",
        f"CASE WHEN c.old_cost > 0 AND c.cost > c.old_cost * {1 + share} THEN '{Reason.COST_RISE}' END",
        f"CASE WHEN c.cost < {floor} AND c.cost IS DISTINCT FROM c.old_cost "
        f"THEN '{Reason.COST_BELOW_FLOOR}' END",
        f"CASE WHEN c.map > c.msrp AND {msrp_pair} OR c.map IS DISTINCT FROM c.old_map) "
        f"THEN '{Reason.MAP_ABOVE_MSRP}' END",
        f"CASE WHEN c.cost > c.msrp AND {msrp_pair} OR c.cost IS DISTINCT FROM c.old_cost) "
        f"THEN '{Reason.COST_ABOVE_MSRP}' END",
    )
    return f"nullif(concat_ws(',', {', '.join(parts)}), '')"


def new_sku_filter(rule: PriceRule, alias: str = "f") -> str:
    """Condition on a feed row that a SKU without a last good value can trip (first loads compare
    only these rows)."""
    a = alias
    return f"({a}.map > {a}.msrp OR {a}.cost > {a}.msrp OR {a}.cost < {float(rule.cost_floor)})"


def decide(engine: Any, rule: PriceRule, candidates: str, reference: str, held: str, run_id: str) -> None:
    """Create ``GUARD``: one row per candidate SKU the guard holds, lets through or resolves.

    ``candidates``: a query of (sku, cost, msrp, map) the target would write; ``reference``: a
    query of the last good (sku, cost, msrp, map); ``held``: the table of (sku, new_cost, new_msrp,
    new_map, times_seen, run_id, resolved_how) of the open held changes and those this run resolved.
    """
    run = sql_literal(run_id)
    accepted = "TRUE" if rule.accept_all else f"c.sku {_in_list(rule.accept)}"
    same = " AND ".join(f"c.{p} IS NOT DISTINCT FROM h.new_{p}" for p in PRICES)
    seen = (
        f"CASE WHEN h.sku IS NULL OR NOT ({same}) THEN 1 "
        f"ELSE h.times_seen + CAST(h.run_id <> {run} AS INT) END"
    )
    changed = ", ".join(f"CASE WHEN c.{p} IS DISTINCT FROM c.old_{p} THEN '{p}' END" for p in PRICES)
    released = f"('{Resolution.ACCEPTED}', '{Resolution.CONFIRMED}')"
    engine.execute(
        f"""CREATE OR REPLACE TEMP TABLE {GUARD} AS
WITH c AS (
    SELECT n.sku, n.cost, n.msrp, n.map, r.sku IS NOT NULL AS known,
           r.cost AS old_cost, r.msrp AS old_msrp, r.map AS old_map
    FROM ({candidates}) n LEFT JOIN ({reference}) r ON r.sku = n.sku
), g AS (
    SELECT c.*, {reasons_sql(rule)} AS reason, nullif(concat_ws(',', {changed}), '') AS fields,
           h.sku IS NOT NULL AND h.resolved_how IS NULL AS was_held, {seen} AS seen,
           h.run_id AS held_run, h.resolved_how
    FROM c LEFT JOIN {held} h ON h.sku = c.sku
)
SELECT * EXCLUDE (held_run, resolved_how), CASE
    WHEN resolved_how IN {released} THEN '{RELEASE}'
    WHEN resolved_how IS NOT NULL THEN '{PASS}'
    WHEN reason IS NULL THEN CASE WHEN held_run = {run} THEN '{HOLD}' ELSE '{CLEAR}' END
    WHEN {accepted} THEN '{ACCEPT}'
    WHEN seen >= {int(rule.confirm_after_feeds)} THEN '{CONFIRM}'
    ELSE '{HOLD}' END AS decision
FROM g c
WHERE reason IS NOT NULL OR was_held OR resolved_how IS NOT NULL"""
    )


def guarded_sql(rows: str, rehash: str | None = None, stored: str | None = None) -> str:
    """``rows`` (mapped rows with ``sku`` and prices) as the guard lets them through: a held SKU with
    a last good value keeps it (its other fields flow), a held new SKU is left out. ``rehash``: the
    row-hash expression to recompute ``row_hash`` with for the held rows; ``stored``: a relation of
    (sku, row_hash) stored already, whose held rows are then left out when nothing else changed."""
    prices = ", ".join(f"CASE WHEN g.sku IS NULL THEN q.{p} ELSE g.old_{p} END AS {p}" for p in PRICES)
    held = f"(SELECT sku, old_cost, old_msrp, old_map, known FROM {GUARD} WHERE decision = '{HOLD}')"
    select = (
        f"SELECT q.* REPLACE ({prices}), g.sku IS NOT NULL AS _held FROM ({rows}) q "
        f"LEFT JOIN {held} g ON g.sku = q.sku WHERE g.sku IS NULL OR g.known"
    )
    if rehash is None:
        return f"SELECT * EXCLUDE (_held) FROM ({select})"
    row_hash = f"CASE WHEN _held THEN {rehash} ELSE row_hash END AS row_hash"
    rehashed = f"SELECT * REPLACE ({row_hash}) FROM ({select})"
    if stored is None:
        return f"SELECT * EXCLUDE (_held) FROM ({rehashed})"
    return (
        f"SELECT s.* EXCLUDE (_held) FROM ({rehashed}) s WHERE NOT s._held OR NOT EXISTS "
        f"(SELECT 1 FROM {stored} c WHERE c.sku = s.sku AND c.row_hash = s.row_hash)"
    )


def held_count(engine: Any) -> int:
    """SKUs this step holds back."""
    rows = engine.execute(f"SELECT count(*) FROM {GUARD} WHERE decision = '{HOLD}'").fetchall()
    return int(rows[0][0])

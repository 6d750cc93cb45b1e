"""The price anomaly guard as the inventory steps use it: the rule from the settings and the
Params, and the needs-attention alert listing what a run held back."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the DAG files import this module: no pyarrow (records) at parse time
    from usdirect.domain.held_changes import PriceRule
    from usdirect.operators.base import OperationRun

ALERT_TOP = 10


def price_rule(run: OperationRun) -> PriceRule | None:
    """The operation's ``price_guard`` settings with this run's ``accept_held`` /
    ``accept_all_held`` Params; None when the guard is off."""
    from usdirect.domain.held_changes import PriceRule

    settings = run.settings.price_guard
    if not settings.enabled:
        return None
    accept = run.params.get("accept_held") or []
    if isinstance(accept, str) or not all(isinstance(s, str) for s in accept):
        raise ValueError(
            f"Param accept_held must be a list of SKUs, got {accept!r}. Fix: trigger with "
            '{"accept_held": ["USD-100001", "USD-100002"]} (the sku column of usdirect_held_changes)'
        )
    return PriceRule(
        max_change_share=settings.max_change_share,
        cost_floor=settings.cost_floor,
        confirm_after_feeds=settings.confirm_after_feeds,
        accept=frozenset(accept),
        accept_all=bool(run.params.get("accept_all_held")),
    )


def alert_if_held(run: OperationRun) -> int:
    """A needs-attention alert when this run left prices held; returns how many SKUs are held."""
    if price_rule(run) is None:
        return 0
    from usdirect.targets.warehouse.held_changes import open_held

    count, top = open_held(run.state_warehouse(), run.account.id, run.run_id, ALERT_TOP)
    run.record.counts["held"] = count
    if not count:
        return 0
    from usdirect.notifications.notifier import alert_needs_attention

    shown = ", ".join(f"{r['sku']} ({r['reason']}: cost {r['old_cost']} → {r['new_cost']})" for r in top)
    alert_needs_attention(
        run,
        "prices_held",
        f"{count} SKU(s) with anomalous prices were held back: they keep their last good prices "
        f"(new SKUs are not created) until accepted or confirmed by later feeds. Top: {shown}",
        {"held": count, "top_skus": ", ".join(r["sku"] for r in top)},
    )
    return count

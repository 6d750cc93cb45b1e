"""The price anomaly guard's rule and its record: price changes held back until a person accepts
them or later feeds confirm them.

A supplier feed that suddenly prices a SKU at a hundredth of its cost (a decimal point lost in an
export) would otherwise be live on the storefront within minutes. Plain data here; the decision is
SQL in ``usdirect.engine.price_guard``, the table is kept by ``usdirect.targets.warehouse.held_changes``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from usdirect.domain.records import INT, MONEY, STRING, TIMESTAMP, Field, Record


class Reason(StrEnum):
    """Why a SKU's prices were held (several may apply; stored comma-separated)."""

    COST_DROP = "cost_drop"  # cost fell by more than max_change_share since the last good value
    COST_RISE = "cost_rise"  # cost rose by more than max_change_share
    COST_BELOW_FLOOR = "cost_below_floor"  # cost under cost_floor
    MAP_ABOVE_MSRP = "map_above_msrp"
    COST_ABOVE_MSRP = "cost_above_msrp"


class Resolution(StrEnum):
    """How a held change ended (``resolved_how``)."""

    ACCEPTED = "accepted"  # a person accepted it (Param accept_held / accept_all_held)
    CONFIRMED = "confirmed"  # the same new values came in confirm_after_feeds feeds in a row
    CLEARED = "cleared"  # the feed went back to values that are not anomalous


HELD_CHANGE = Record(
    "held price change",
    "usdirect_held_changes",
    (
        Field("account", STRING, nullable=False),
        Field("sku", STRING, nullable=False),
        Field("fields", STRING, description="the price fields whose value changed, e.g. cost,map"),
        Field("reason", STRING, nullable=False, description="Reason codes, comma-separated"),
        Field("old_cost", MONEY, description="the last good value (null for a SKU never accepted)"),
        Field("old_msrp", MONEY),
        Field("old_map", MONEY),
        Field("new_cost", MONEY, description="the value held back"),
        Field("new_msrp", MONEY),
        Field("new_map", MONEY),
        Field("first_held_at", TIMESTAMP, nullable=False),
        Field("last_seen_at", TIMESTAMP, nullable=False),
        Field("times_seen", INT, nullable=False, description="runs in a row that brought these new values"),
        Field("run_id", STRING, nullable=False, description="the last run that saw it"),
        Field("resolved_at", TIMESTAMP, description="null while held"),
        Field("resolved_how", STRING, description="a Resolution"),
        Field("resolved_run_id", STRING),
    ),
)


@dataclass(frozen=True)
class PriceRule:
    """The guard's thresholds (settings ``price_guard``) and this run's acceptances (Params)."""

    max_change_share: float = 0.6
    cost_floor: float = 0.05
    confirm_after_feeds: int = 2
    accept: frozenset[str] = field(default_factory=frozenset)
    accept_all: bool = False

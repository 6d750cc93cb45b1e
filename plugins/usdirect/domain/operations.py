"""The five operations, each defined once: what the settings, DAG factory, alerts and templates read.

An operation used to be spelled out in five places (settings, DAG factory, troubleshooting,
Params attached to functions, the mapping schema's kinds) that could drift apart. Plain data
here, no Airflow import: every layer above may read it, and DAG files stay cheap to parse.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, get_args

# The kind of mapping template an operation maps with: the template's own `operation:` key.
TemplateKind = Literal["inventory", "orders", "shipments", "invoices"]
TEMPLATE_KINDS: tuple[TemplateKind, ...] = get_args(TemplateKind)


@dataclass(frozen=True)
class ParamSpec:
    """One DAG Param: its default, JSON schema (``type``, ``items``, ``minimum`` only) and help text."""

    name: str
    default: object
    schema: Mapping[str, object]
    description: str


@dataclass(frozen=True)
class OperationSpec:
    """Everything that identifies an operation outside its task code.

    ``windowed`` operations fetch "what changed in this window": each run owns
    [data_interval_start, end), so runs and backfills cover every window once. ``guide_section``
    is the troubleshooting guide's section (``usdirect.notifications.troubleshooting.SECTIONS``)
    an error of the operation points at.
    """

    id: str
    windowed: bool
    template_kind: TemplateKind
    guide_section: str
    doc: str
    params: tuple[ParamSpec, ...] = ()

    @property
    def dag_suffix(self) -> str:
        """What follows ``usdirect_`` (and the account) in the DAG id: the operation id itself."""
        return self.id


_PO_NUMBERS = {"type": "array", "items": {"type": "string"}}
_ACCEPT_HELD = (
    ParamSpec(
        "accept_held",
        [],
        {"type": "array", "items": {"type": "string"}},
        "Let these SKUs' held prices through in this run (the sku column of usdirect_held_changes).",
    ),
    ParamSpec(
        "accept_all_held",
        False,
        {"type": "boolean"},
        "Let every price the guard holds through in this run: held ones and new anomalies alike.",
    ),
)

GET_INVENTORY = OperationSpec(
    id="get_inventory",
    windowed=False,
    template_kind="inventory",
    guide_section="inventory",
    doc="Full US Direct feed → mapped inventory, pricing and quantity; archives missing SKUs.",
    params=(
        ParamSpec(
            "allow_shrink",
            False,
            {"type": "boolean"},
            "Accept a feed that is empty or shrank more than max_shrink_share (a real catalog cut): "
            "the missing SKUs are archived at once, without waiting for archive_after_missing_feeds.",
        ),
        ParamSpec(
            "reconcile",
            False,
            {"type": "boolean"},
            "Read the platform's variants of this account's SKUs and send exactly what differs "
            "(stale quantity or prices, live variants that should be archived, archived ones that should "
            "be live). Downloads the feed even when it is unchanged.",
        ),
        *_ACCEPT_HELD,
    ),
)
GET_INVENTORY_CHANGES = OperationSpec(
    id="get_inventory_changes",
    windowed=True,
    template_kind="inventory",
    guide_section="inventory",
    doc="Price and quantity changes from /v1/inventory over the run's data interval.",
    params=_ACCEPT_HELD,
)
SEND_ORDERS = OperationSpec(
    id="send_orders",
    windowed=False,
    template_kind="orders",
    guide_section="orders",
    doc="Pending fulfillment requests → US Direct purchase orders, each PO created exactly once.",
    params=(
        ParamSpec(
            "dry_run", False, {"type": "boolean"}, "Map and validate only; send nothing, show payloads."
        ),
        ParamSpec("po_numbers", [], _PO_NUMBERS, "Send only these POs (e.g. one to verify first)."),
        ParamSpec(
            "confirm",
            False,
            {"type": "boolean"},
            "Submit every pending order in this manual run although "
            "operations.send_orders.automatic is false (verify one order with po_numbers first).",
        ),
        ParamSpec("max_orders", None, {"type": ["null", "integer"], "minimum": 1}, "Send at most this many."),
    ),
)
GET_SHIPMENTS = OperationSpec(
    id="get_shipments",
    windowed=True,
    template_kind="shipments",
    guide_section="shipments",
    doc="Shipments changed in the run's data interval, plus lookups for overdue open POs.",
)
GET_INVOICES = OperationSpec(
    id="get_invoices",
    windowed=False,
    template_kind="invoices",
    guide_section="invoices",
    doc="Invoices for shipped POs (Reseller Token), with total and quantity checks.",
    params=(ParamSpec("po_numbers", [], _PO_NUMBERS, "Also ask for the invoices of these POs."),),
)

SPECS: dict[str, OperationSpec] = {
    s.id: s for s in (GET_INVENTORY, GET_INVENTORY_CHANGES, SEND_ORDERS, GET_SHIPMENTS, GET_INVOICES)
}
OPERATIONS: tuple[str, ...] = tuple(SPECS)
WINDOWED: frozenset[str] = frozenset(s.id for s in SPECS.values() if s.windowed)

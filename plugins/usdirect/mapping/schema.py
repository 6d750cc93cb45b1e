"""Canonical target fields: the code's side of every mapping template.

Templates map source columns onto these names; the pipelines read only these names, so a
renamed supplier column is absorbed by editing a template, never the code. Types here are the
output types of `Template.map_batch` / `map_records` (one stable schema per operation). The
fields and their types are the records' of ``usdirect.domain`` (one declaration per record kind).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pyarrow as pa

from usdirect.domain.fulfillment import ORDER, ORDER_LINE
from usdirect.domain.inventory import INVENTORY_ROW
from usdirect.domain.invoices import INVOICE, INVOICE_LINE
from usdirect.domain.operations import TemplateKind
from usdirect.domain.records import Record
from usdirect.domain.shipments import SHIPMENT, SHIPMENT_ITEM

_DECIMAL = re.compile(r"^decimal\(\s*(\d+)\s*,\s*(\d+)\s*\)$")
SCALAR_TYPES = ("string", "int", "bool", "date", "timestamp")
TYPE_HELP = "string, int, bool, date, timestamp or decimal(p,s) such as decimal(12,2)"


def parse_type(name: str) -> pa.DataType:
    """Turn a template type name into an Arrow type; ValueError names the allowed spellings."""
    name = name.strip()
    simple = {
        "string": pa.string(),
        "int": pa.int64(),
        "bool": pa.bool_(),
        "date": pa.date32(),
        "timestamp": pa.timestamp("us", tz="UTC"),
    }
    if name in simple:
        return simple[name]
    match = _DECIMAL.match(name)
    if match:
        precision, scale = int(match.group(1)), int(match.group(2))
        if not 1 <= precision <= 38 or scale > precision:
            raise ValueError(f"decimal({precision},{scale}) needs 1 <= p <= 38 and s <= p")
        return pa.decimal128(precision, scale)
    raise ValueError(f"unknown type {name!r}")


def type_name(dtype: pa.DataType) -> str:
    """The template spelling of an Arrow type produced by `parse_type`."""
    if pa.types.is_decimal(dtype):
        return f"decimal({dtype.precision},{dtype.scale})"
    names = {
        pa.string(): "string",
        pa.int64(): "int",
        pa.bool_(): "bool",
        pa.date32(): "date",
        pa.timestamp("us", tz="UTC"): "timestamp",
    }
    return names[dtype]


@dataclass(frozen=True)
class Target:
    """One canonical output field."""

    name: str
    type: str
    required: bool = False


@dataclass(frozen=True)
class ChildTargets:
    """A child list (order lines, shipment items, invoice lines) and its fields."""

    name: str
    parent_key: str
    targets: tuple[Target, ...]


@dataclass(frozen=True)
class OperationTargets:
    """Everything the code expects from a template of one operation."""

    operation: TemplateKind
    key: str
    targets: tuple[Target, ...]
    child: ChildTargets | None = None
    switch_groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    always_writable: tuple[str, ...] = ()

    def by_name(self) -> dict[str, Target]:
        return {t.name: t for t in self.targets}


def targets(record: Record) -> tuple[Target, ...]:
    """The target fields of a record: the fields a template fills, typed in the template's spelling."""
    return tuple(Target(f.name, f.type.name, f.required) for f in record.mapped)


INVENTORY = OperationTargets(
    operation="inventory",
    key="sku",
    targets=targets(INVENTORY_ROW),
    # Flxpoint's Get Inventory switches: which target fields a run may write.
    switch_groups={
        "sync_pricing": ("cost", "msrp", "map"),
        "sync_quantity": ("quantity",),
        "sync_inventory": (
            "title",
            "brand",
            "mpn",
            "upc",
            "status",
            "archived",
            "weight_lb",
            "length_in",
            "width_in",
            "height_in",
            "category",
            "image_url",
            "source_updated_at",
        ),
    },
    always_writable=("sku", "supplier_sku"),
)

ORDERS = OperationTargets(
    operation="orders",
    key="po_number",
    targets=targets(ORDER),
    child=ChildTargets(name="lines", parent_key="po_number", targets=targets(ORDER_LINE)),
)

SHIPMENTS = OperationTargets(
    operation="shipments",
    key="po_number",
    targets=targets(SHIPMENT),
    child=ChildTargets(name="items", parent_key="shipment_id", targets=targets(SHIPMENT_ITEM)),
)

INVOICES = OperationTargets(
    operation="invoices",
    key="po_number",
    targets=targets(INVOICE),
    child=ChildTargets(name="lines", parent_key="invoice_number", targets=targets(INVOICE_LINE)),
)

CANONICAL: dict[str, OperationTargets] = {t.operation: t for t in (INVENTORY, ORDERS, SHIPMENTS, INVOICES)}

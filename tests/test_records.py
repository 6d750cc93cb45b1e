"""One declaration per record kind: the tables the package creates on DuckDB and Postgres, the
Arrow schemas and the mapping templates' target fields must all say what ``usdirect.domain``
declares. Tables are created by the package's own ``ensure_*`` functions and read back from
``information_schema``, so a hand-written column type anywhere fails here."""

from __future__ import annotations

import uuid
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from tests.support.connections import conn_env_var, warehouse_conn
from tests.support.paths import MAPPINGS
from usdirect.domain.fulfillment import FULFILLMENT_REQUEST, FULFILLMENT_REQUEST_LINE, ORDER, ORDER_LINE
from usdirect.domain.held_changes import HELD_CHANGE
from usdirect.domain.inventory import INVENTORY_ROW, MAPPED_SCHEMA
from usdirect.domain.invoices import INVOICE, INVOICE_LINE
from usdirect.domain.records import INT32, Record
from usdirect.domain.rejects import REJECT, REJECT_SCHEMA, STORED_REJECT_SCHEMA
from usdirect.domain.runs import RUN
from usdirect.domain.shipments import SHIPMENT, SHIPMENT_ITEM
from usdirect.mapping.schema import CANONICAL, parse_type
from usdirect.targets.warehouse.audit import ensure_audit_tables
from usdirect.targets.warehouse.held_changes import ensure_held_table
from usdirect.targets.warehouse.inventory import INVENTORY, ensure_inventory_tables
from usdirect.targets.warehouse.order_tables import ensure_tables
from usdirect.targets.warehouse.sql import Warehouse

STORED = (
    HELD_CHANGE,
    FULFILLMENT_REQUEST,
    FULFILLMENT_REQUEST_LINE,
    SHIPMENT,
    SHIPMENT_ITEM,
    INVOICE,
    INVOICE_LINE,
    RUN,
    REJECT,
)
# Template kind -> (parent record, child record): what each bundled template maps onto.
TEMPLATED = {
    "inventory": (INVENTORY_ROW, None),
    "orders": (ORDER, ORDER_LINE),
    "shipments": (SHIPMENT, SHIPMENT_ITEM),
    "invoices": (INVOICE, INVOICE_LINE),
}
# information_schema's data_type per engine, as the Arrow type it stores (decimals apart).
DB_TYPES = {
    "duckdb": {
        "VARCHAR": pa.string(),
        "BIGINT": pa.int64(),
        "INTEGER": pa.int32(),
        "BOOLEAN": pa.bool_(),
        "DATE": pa.date32(),
        "TIMESTAMP WITH TIME ZONE": pa.timestamp("us", tz="UTC"),
        "DOUBLE": pa.float64(),
    },
    "postgres": {
        "text": pa.string(),
        "bigint": pa.int64(),
        "integer": pa.int32(),
        "boolean": pa.bool_(),
        "date": pa.date32(),
        "timestamp with time zone": pa.timestamp("us", tz="UTC"),
        "double precision": pa.float64(),
    },
}


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Warehouse:
    """The package's tables, created by its own code in a fresh DuckDB file or Postgres schema."""
    schema = None if request.param == "duckdb" else f"records_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv(*conn_env_var("wh_records", warehouse_conn(request.param, request, tmp_path)))
    wh = Warehouse.from_conn_id("wh_records", schema=schema)
    with wh.connect() as conn:
        ensure_tables(wh, conn)
        ensure_audit_tables(wh, conn)
        ensure_inventory_tables(wh, conn)
        ensure_held_table(wh, conn)
    return wh


def stored_columns(wh: Warehouse, table: str) -> list[tuple[str, pa.DataType, bool]]:
    """(name, Arrow type, nullable) of each column of ``table`` as the engine reports it."""
    p = wh.placeholder
    with wh.connect() as conn:
        rows = wh.fetchall(
            conn,
            "SELECT column_name, data_type, numeric_precision, numeric_scale, is_nullable "
            f"FROM information_schema.columns WHERE table_name = {p} "
            f"AND table_schema = COALESCE({p}, current_schema()) ORDER BY ordinal_position",
            (table, wh.schema),
        )
    out = []
    for name, data_type, precision, scale, nullable in rows:
        if data_type.upper().startswith(("DECIMAL", "NUMERIC")):
            arrow = pa.decimal128(int(precision), int(scale))
        else:
            arrow = DB_TYPES[wh.dialect][data_type]
        out.append((name, arrow, nullable == "YES"))
    return out


def primary_key(wh: Warehouse, table: str) -> tuple[str, ...]:
    p = wh.placeholder
    with wh.connect() as conn:
        rows = wh.fetchall(
            conn,
            "SELECT k.column_name FROM information_schema.table_constraints c "
            "JOIN information_schema.key_column_usage k ON k.constraint_name = c.constraint_name "
            "AND k.table_name = c.table_name AND k.table_schema = c.table_schema "
            f"WHERE c.table_name = {p} AND c.table_schema = COALESCE({p}, current_schema()) "
            "AND c.constraint_type = 'PRIMARY KEY' ORDER BY k.ordinal_position",
            (table, wh.schema),
        )
    return tuple(r[0] for r in rows)


def declared(record: Record) -> list[tuple[str, pa.DataType, bool]]:
    schema = record.arrow_schema()
    return [(f.name, schema.field(f.name).type, f.nullable) for f in record.fields]


@pytest.mark.parametrize("record", STORED, ids=lambda r: r.stored_as)
def test_each_stored_table_has_exactly_the_declared_columns_types_and_key(
    warehouse: Warehouse, record: Record
) -> None:
    assert stored_columns(warehouse, record.stored_as) == declared(record)
    assert primary_key(warehouse, record.stored_as) == record.key


def test_the_arrow_schemas_the_pipelines_write_are_the_stored_columns(warehouse: Warehouse) -> None:
    inventory = {name: (arrow, nullable) for name, arrow, nullable in stored_columns(warehouse, INVENTORY)}
    assert [(f.name, f.type) for f in MAPPED_SCHEMA] == [
        (name, inventory[name][0]) for name in INVENTORY_ROW.names
    ]
    assert [n for n in INVENTORY_ROW.names if not inventory[n][1]] == ["sku", "supplier_sku"]
    assert inventory["account"] == (pa.string(), False)
    rejects = {name: arrow for name, arrow, _ in stored_columns(warehouse, REJECT.stored_as)}
    assert [(f.name, f.type) for f in STORED_REJECT_SCHEMA] == [
        (f.name, rejects[f.name]) for f in STORED_REJECT_SCHEMA
    ]
    assert REJECT_SCHEMA.names == ["operation", "row_number", "key", "reason", "raw"]
    # The measures stay as stored since the first release (templates once said decimal(10,2)).
    assert {f.type for f in MAPPED_SCHEMA if f.name.endswith(("_lb", "_in"))} == {pa.decimal128(12, 3)}


@pytest.mark.parametrize("kind", sorted(TEMPLATED))
def test_template_targets_are_the_records_mapped_fields(kind: str) -> None:
    parent, child = TEMPLATED[kind]
    targets = CANONICAL[kind]
    pairs = [(targets.targets, parent)] + ([(targets.child.targets, child)] if child else [])
    for fields, record in pairs:
        assert [(t.name, t.type, t.required) for t in fields] == [
            (f.name, f.type.name, f.required) for f in record.mapped
        ]
        for target in fields:
            field = record.field(target.name)
            # The template language has one integer type; INTEGER columns narrow it on load.
            expected = pa.int64() if field.type is INT32 else field.type.arrow
            assert parse_type(target.type) == expected, target.name


@pytest.mark.parametrize("kind", sorted(TEMPLATED))
def test_bundled_templates_declare_the_records_types(kind: str) -> None:
    spec = yaml.safe_load((MAPPINGS / f"{kind}.yaml").read_text())
    parent, child = TEMPLATED[kind]
    sections = [(spec["fields"], parent)]
    if child is not None:
        (child_spec,) = spec["children"].values()
        sections.append((child_spec["fields"], child))
    for fields, record in sections:
        types = {name: f["type"] for name, f in fields.items() if "type" in f}
        assert types == {name: record.field(name).type.name for name in types}


def test_a_template_of_an_earlier_release_with_narrower_measures_still_loads(tmp_path: Path) -> None:
    from usdirect.mapping import TemplateError, load_template

    (tmp_path / "value_maps.yaml").write_text((MAPPINGS / "value_maps.yaml").read_text())
    text = (MAPPINGS / "inventory.yaml").read_text()
    old = tmp_path / "inventory.yaml"
    old.write_text(text.replace("type: decimal(12,3)", "type: decimal(10,2)"))
    assert load_template(old).schema.field("height_in").type == pa.decimal128(12, 3)
    wider = tmp_path / "wider.yaml"
    wider.write_text(text.replace("type: decimal(12,3)", "type: decimal(12,4)", 1))
    with pytest.raises(TemplateError, match=r"weight_lb is decimal\(12,3\) in the pipeline"):
        load_template(wider)

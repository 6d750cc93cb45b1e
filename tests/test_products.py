"""The operators' product declarations name real tables: each table a step declares is created by
the package's own code, with the columns of the record ``table_record`` gives for it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.connections import conn_env_var, warehouse_conn
from usdirect.domain.products import table_record
from usdirect.operators import inventory_deliver, inventory_fetch, inventory_map, invoices, orders, shipments
from usdirect.operators.usdirect_operator import UsDirectBaseOperator
from usdirect.targets.warehouse.audit import ensure_audit_tables
from usdirect.targets.warehouse.inventory import ensure_inventory_tables
from usdirect.targets.warehouse.order_tables import ensure_tables
from usdirect.targets.warehouse.sql import Warehouse

MODULES = (inventory_fetch, inventory_map, inventory_deliver, shipments, invoices, orders)


def operator_classes() -> list[type[UsDirectBaseOperator]]:
    return [
        c
        for m in MODULES
        for c in vars(m).values()
        if isinstance(c, type) and issubclass(c, UsDirectBaseOperator) and c.__module__ == m.__name__
    ]


def test_every_table_a_step_declares_is_created_with_its_record_columns(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(*conn_env_var("wh_products", warehouse_conn("duckdb", request, tmp_path)))
    wh = Warehouse.from_conn_id("wh_products")
    with wh.connect() as conn:
        ensure_tables(wh, conn)
        ensure_audit_tables(wh, conn)
        ensure_inventory_tables(wh, conn)
        tables = {t for c in operator_classes() for t in c.products.tables}
        assert {"usdirect_inventory", "usdirect_shipments", "usdirect_invoices"} <= tables
        for table in sorted(tables):
            rows = wh.fetchall(
                conn, "SELECT column_name FROM information_schema.columns WHERE table_name = ?", (table,)
            )
            columns = {r[0] for r in rows}
            assert set(table_record(table).names) <= columns, table


def test_the_delivering_steps_declare_their_outputs_and_the_bookkeeping_ones_none() -> None:
    declared = {c.__name__: c.products for c in operator_classes()}
    assert declared["UsDirectInventoryToWarehouseOperator"].tables == (
        "usdirect_inventory",
        "usdirect_inventory_history",
    )
    assert declared["UsDirectInventoryToPlatformOperator"].platform == ("inventory_variants",)
    assert declared["UsDirectShipmentsToPlatformOperator"].platform == ("shipments",)
    assert declared["UsDirectInvoicesToPlatformOperator"].platform == ("source_invoices",)
    assert declared["UsDirectGetInventoryOperator"].reads == ("usdirect:feed",)
    record_state = declared["UsDirectRecordFeedStateOperator"]
    assert not record_state.tables and not record_state.platform

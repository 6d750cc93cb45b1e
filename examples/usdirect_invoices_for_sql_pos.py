"""Example: Get Invoice for the POs a SQL query returns, composed by hand from the public operators.

A data engineer's own DAG, without the package's settings file: every setting is an operator
argument. The query stands in for a dbt model of disputed orders; its one column of PO numbers
reaches ``UsDirectGetInvoicesOperator`` by XCom, and the invoices land in the warehouse. Copy the
file into your DAGs folder and point ``template`` at your invoices template.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator
from airflow.sdk import DAG

from usdirect.operators.invoices import UsDirectGetInvoicesOperator, UsDirectInvoicesToWarehouseOperator

# What both US Direct steps share: the load step finds the staged invoices by DAG run.
SETTINGS: dict[str, Any] = {
    "usdirect_conn_id": "usdirect_default",
    "warehouse_conn_id": "usdirect_warehouse",
    "template": "../include/mappings/invoices.yaml",  # relative to this file's folder
}

with DAG(
    dag_id="example_usdirect_invoices_for_sql_pos",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    tags=["usdirect", "example"],
):
    disputed_pos = SQLExecuteQueryOperator(
        task_id="disputed_pos",
        conn_id="usdirect_warehouse",
        sql="SELECT po_number FROM disputed_orders ORDER BY po_number",
    )
    get_invoices = UsDirectGetInvoicesOperator(
        task_id="get_invoices", po_numbers=disputed_pos.output, only_po_numbers=True, **SETTINGS
    )
    UsDirectInvoicesToWarehouseOperator(task_id="load_invoices", fetched=get_invoices.output, **SETTINGS)

"""Example: rebuild a price list in the warehouse whenever Get Inventory changed the inventory.

A downstream DAG of a user's own, scheduled on the Asset alias of the inventory load
(``usdirect.<account>.<operation>.warehouse``): it runs after every run of the full feed or the
changes that really changed ``usdirect_inventory``, and never after a 304 or an unchanged feed
(those emit no Asset event). An alias needs no connection lookup when this file is parsed, and
Airflow resolves it when the event arrives, so the first event already triggers the run. The
events' ``extra`` (counts, window) is in the run's ``triggering_asset_events``.
"""

from __future__ import annotations

import datetime as dt

from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator
from airflow.sdk import DAG, AssetAlias

ACCOUNT = "main"  # the account id of the settings file (or ``account_id`` of your own operators)
INVENTORY_CHANGED = AssetAlias(f"usdirect.{ACCOUNT}.get_inventory.warehouse") | AssetAlias(
    f"usdirect.{ACCOUNT}.get_inventory_changes.warehouse"
)

with DAG(
    dag_id="example_usdirect_price_list",
    schedule=INVENTORY_CHANGED,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    tags=["usdirect", "example"],
):
    SQLExecuteQueryOperator(
        task_id="refresh_price_list",
        conn_id="usdirect_warehouse",
        # A DuckDB file has one writer at a time: the platform publish may still hold it.
        retries=3,
        retry_delay=dt.timedelta(seconds=30),
        # Valid on DuckDB and Postgres alike.
        sql=[
            "DROP TABLE IF EXISTS usdirect_price_list",
            "CREATE TABLE usdirect_price_list AS SELECT account, sku, cost, msrp, map, quantity, "
            "msrp - cost AS margin FROM usdirect_inventory WHERE NOT archived",
        ],
    )

"""The Airflow Asset URI of a warehouse table, in the convention of the database in use.

Postgres: ``postgres://host:port/database/schema/table``, as the Postgres provider normalizes it
(its ``sanitize_uri``), so an Asset a downstream DAG declares with the provider's factory is the
same one. DuckDB has no registered scheme; its tables are ``duckdb:///<absolute file>/<schema>/<table>``.
Only the location goes into a URI: never a login, password or a connection's query string
(a MotherDuck token travels there).
"""

from __future__ import annotations

from pathlib import Path

from usdirect.targets.warehouse.sql import Warehouse

POSTGRES_SCHEMA = "public"  # the schema of a warehouse without one configured
DUCKDB_SCHEMA = "main"


def table_uri(wh: Warehouse, table: str) -> str:
    """The table's Asset URI, from the warehouse's connection (looked up when the task runs)."""
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(wh.conn_id)
    if wh.dialect == "duckdb":
        location = (conn.host or ":memory:").split("?", 1)[0]
        if location != ":memory:" and not location.startswith("md:"):
            location = str(Path(location).expanduser().resolve())
        location = location if location.startswith("/") else f"/{location}"
        return f"duckdb://{location}/{wh.schema or DUCKDB_SCHEMA}/{table}"
    database = conn.schema or conn.login  # libpq connects to the user's database by default
    return f"postgres://{conn.host}:{conn.port or 5432}/{database}/{wh.schema or POSTGRES_SCHEMA}/{table}"

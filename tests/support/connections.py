"""Airflow connections for tests, defined the way a deployment can: AIRFLOW_CONN_* variables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def warehouse_conn(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> dict:
    """Airflow connection dict (JSON form) for a DuckDB file or the session's Postgres database."""
    if kind == "duckdb":
        return {"conn_type": "duckdb", "host": str(tmp_path / "warehouse.duckdb")}
    dsn = request.getfixturevalue("pg_dsn")
    return {
        "conn_type": "postgres",
        "host": "127.0.0.1",
        "login": "postgres",
        "port": 5432,
        "schema": dsn.rsplit("/", 1)[1],
    }


def conn_env_var(conn_id: str, conn: dict) -> tuple[str, str]:
    """The AIRFLOW_CONN_<ID> variable (JSON form) that defines a connection for this process."""
    return f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn)

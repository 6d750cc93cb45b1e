"""Fixtures for the inventory tests: a warehouse on a real DuckDB file or a real Postgres database."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.conftest import conn_env_var
from usdirect.targets.sql import Warehouse


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


@pytest.fixture(params=["duckdb", "postgres"])
def wh(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Warehouse:
    """A warehouse with a schema of its own, so Postgres tests sharing one database never collide."""
    monkeypatch.setenv(*conn_env_var("inv_wh", warehouse_conn(request.param, request, tmp_path)))
    return Warehouse.from_conn_id("inv_wh", schema=f"inv_{uuid.uuid4().hex[:8]}")

"""Shared fixtures: a throw-away Airflow home, Postgres database, DuckDB file and sandbox servers.

Airflow reads its configuration when first imported, so the environment is set here, at import
time, before any test module imports Airflow.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
_HOME = Path(tempfile.mkdtemp(prefix="usdirect-airflow-home-"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "USDIRECT_CONFIG": str(REPO / "include" / "usdirect.yaml"),
    }
)
PG_ADMIN_DSN = os.environ.get("USDIRECT_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata DB in the session's AIRFLOW_HOME (needed by dag.test())."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
    )
    return _HOME


@contextmanager
def temporary_database(prefix: str) -> Iterator[str]:
    """DSN of a Postgres database created for the caller and dropped afterwards."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """A Postgres database created for this session and dropped afterwards."""
    with temporary_database("usdirect_test") as dsn:
        yield dsn


@pytest.fixture
def duckdb_path(tmp_path: Path) -> Path:
    """Path of a fresh DuckDB warehouse file."""
    return tmp_path / "warehouse.duckdb"


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


pytest_plugins = ["sandbox.pytest_plugin"]

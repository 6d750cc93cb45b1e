"""Shared fixtures: a throw-away Airflow home, Postgres database, DuckDB file and sandbox servers.

Airflow reads its configuration when first imported, so the environment is set here, at import
time, before any test module imports Airflow.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.paths import REPO

# PG_ADMIN_DSN: still imported from here by tests/e2e/test_local_airflow_restart.py (another
# change moves that file to tests.support); nothing else may import from a conftest.
from tests.support.postgres import PG_ADMIN_DSN, temporary_database  # noqa: F401

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


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """A Postgres database created for this session and dropped afterwards."""
    with temporary_database("usdirect_test") as dsn:
        yield dsn


@pytest.fixture
def duckdb_path(tmp_path: Path) -> Path:
    """Path of a fresh DuckDB warehouse file."""
    return tmp_path / "warehouse.duckdb"


pytest_plugins = ["sandbox.pytest_plugin"]

"""Shared fixtures: a throw-away Airflow home, Postgres database, DuckDB file, sandbox servers and
the Redis-shared rate limit.

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
from tests.support.postgres import temporary_database

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


# Shared rate limit on Redis (tests/hooks/test_ratelimit_shared.py, tests/test_accounts.py);
# imports inside, so that conftest loads nothing before the environment above is set.
@pytest.fixture
def redis_db() -> Iterator[object]:
    """A client of Redis database 11, flushed before and after the test; skips when Redis is down."""
    from benchmarks.bench_pacing import REDIS_URL_DB

    redis = pytest.importorskip("redis")
    host, port, db = REDIS_URL_DB
    client = redis.Redis(host=host, port=port, db=db, socket_connect_timeout=2, socket_timeout=5)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.skip(
            f"Redis at {host}:{port} does not answer ({exc}); start it (redis-server --port {port}) to "
            f"run the shared rate-limit tests"
        )
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def shared_pacing(
    redis_db: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, str]]:
    """Settings with ``rate_limit.backend: redis`` and the Redis connection, for this process and children."""
    from benchmarks.bench_pacing import REDIS_CONN_ID, redis_connection, settings_file
    from usdirect.hooks import ratelimit, ratelimit_redis

    config = settings_file(tmp_path, "redis")
    monkeypatch.setenv("USDIRECT_CONFIG", str(config))
    monkeypatch.setenv(f"AIRFLOW_CONN_{REDIS_CONN_ID.upper()}", redis_connection())
    yield config, REDIS_CONN_ID
    ratelimit._shared.clear()
    ratelimit_redis.reset_clients()


pytest_plugins = ["sandbox.pytest_plugin"]

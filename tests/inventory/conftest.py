"""Fixtures for the inventory tests: a warehouse on a real DuckDB file or a real Postgres database,
and ``make_env`` for running the inventory DAGs against a private sandbox."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.runner import SandboxInfo
from tests.support.connections import conn_env_var, warehouse_conn
from tests.support.inventory import Env
from tests.support.settings_file import write_settings
from usdirect.targets.warehouse.sql import Warehouse


@pytest.fixture(params=["duckdb", "postgres"])
def wh(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Warehouse:
    """A warehouse with a schema of its own, so Postgres tests sharing one database never collide."""
    monkeypatch.setenv(*conn_env_var("inv_wh", warehouse_conn(request.param, request, tmp_path)))
    return Warehouse.from_conn_id("inv_wh", schema=f"inv_{uuid.uuid4().hex[:8]}")


@pytest.fixture
def make_env(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    airflow_db: Path,
    sandbox_factory: Callable[..., SandboxInfo],
    request: pytest.FixtureRequest,
) -> Iterator[Callable[..., Env]]:
    def make(kind: str, targets: list[str], **sandbox_options: Any) -> Env:
        sb = sandbox_factory(**sandbox_options)
        conns = sb.connections()
        for conn in conns.values():  # fail fast when a test makes a call fail for good
            conn["extra"] = {**conn.get("extra", {}), "max_attempts": 3, "backoff_base": 0.05}
        for conn_id, conn in conns.items():
            monkeypatch.setenv(*conn_env_var(conn_id, conn))
        monkeypatch.setenv(*conn_env_var("usdirect_warehouse", warehouse_conn(kind, request, tmp_path)))
        # Postgres tests share the session database: each gets a schema of its own.
        schema = f"inv_e2e_{uuid.uuid4().hex[:8]}" if kind == "postgres" else None
        monkeypatch.setenv(
            "USDIRECT_CONFIG", str(write_settings(tmp_path, targets, retries=0, schema=schema))
        )
        return Env(sb, Warehouse.from_conn_id("usdirect_warehouse", schema=schema), tmp_path)

    yield make

"""Send Orders' metrics reach a StatsD server, and its log stays readable (progress, one DuckDB open)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sandbox.runner import SandboxInfo
from tests.support.connections import conn_env_var
from tests.support.dag_subprocess import dag_test_in_subprocess
from tests.support.orders import FAST_CLIENT, FAST_HTTP, FAST_SANDBOX
from tests.support.settings_file import write_settings
from tests.support.statsd import StatsdListener


def test_send_orders_counts_orders_in_statsd_and_opens_duckdb_quietly(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    airflow_db: Path,
    sandbox_factory: Callable[..., SandboxInfo],
) -> None:
    sb = sandbox_factory(**FAST_SANDBOX)
    for conn_id, conn in sb.connections().items():
        conn = {**conn, "extra": {**conn.get("extra", {}), **FAST_HTTP, **FAST_CLIENT}}
        monkeypatch.setenv(*conn_env_var(conn_id, conn))
    monkeypatch.setenv(
        *conn_env_var("usdirect_warehouse", {"conn_type": "duckdb", "host": str(tmp_path / "w.duckdb")})
    )
    monkeypatch.setenv("USDIRECT_CONFIG", str(write_settings(tmp_path, ["warehouse", "platform"])))
    monkeypatch.setenv("AIRFLOW__USDIRECT__PROGRESS_INTERVAL_SECONDS", "0.2")

    with StatsdListener() as statsd:
        statsd.configure(monkeypatch)
        run = dag_test_in_subprocess("usdirect_send_orders", {"confirm": True})
    assert run.states == {"send_orders": "success"}
    counters = statsd.counters()
    created = sb.creation_counts()
    assert len(created) == 21
    assert counters["usdirect.orders.submitted"] == 21
    assert counters["usdirect.orders.needs_attention"] == 5
    assert counters["usdirect.send_orders.send_orders.rows_read"] == 26
    assert counters["usdirect.send_orders.send_orders.rows_written"] == 21
    assert counters["usdirect.send_orders.send_orders.rows_rejected"] == 5

    logged = run.log
    # The warehouse is opened once per transaction (dozens here); the log says so once.
    assert sum("Opening DuckDB database" in line for line in logged) == 1
    sending = [line for line in logged if "] order sending: " in line]
    assert sending[-1].split("] order sending: ")[1].startswith("21 orders done in ")
    # Every 0.2 s at most, whatever the number of orders: the run's seconds bound the lines.
    seconds = float(sending[-1].split(" done in ")[1].split(" s ")[0])
    assert len(sending) - 1 <= seconds / 0.2 + 1
    assert all("/21 orders (" in line and ", ETA " in line for line in sending[:-1])

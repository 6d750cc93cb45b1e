"""A real Airflow for the end-to-end tests: scheduler, DAG processor, API server and triggerer.

Started as `airflow standalone` would (LocalExecutor, SimpleAuthManager), but as four processes on a
temp home and free ports, with a throw-away Postgres metadata DB: Airflow 3 accepts SQLite with the
LocalExecutor, but the CLI (`backfill create`) then fails with "database is locked" while the
scheduler and workers write. The
sandbox servers running and connections and pools created through the CLI by the same code that
`make airflow` uses (scripts/local_airflow.py). The REST API v2 is called with a JWT from
POST /auth/token, as any API client of a SimpleAuthManager deployment would.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from scripts.local_airflow import (
    PASSWORDS_FILE,
    airflow_cli,
    airflow_env,
    demo_connections,
    import_connections,
    import_pools,
    seed_orders,
    stop_process_group,
)
from tests.support.paths import REPO
from tests.support.receivers import WebhookReceiver

COMPONENTS = ("scheduler", "dag-processor", "api-server", "triggerer")
HARNESS_DAG = "usdirect_e2e_harness"
# The sandbox's simulated clock starts here, so orders sent in the test ship inside the backfilled
# windows (2026-11-20..22): label created +20 h, in transit +30 h, delivered +78 h.
SANDBOX_START = dt.datetime(2026, 11, 19, 12, tzinfo=dt.UTC)
TERMINAL = {"success", "failed"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def e2e_config(path: Path, overrides: Mapping[str, Any] | None = None) -> Path:
    """The shipped config with test-speed settings: no task retries, daily shipment windows.

    Daily windows keep "three days of backfill" at three runs instead of 72 hourly ones; the
    windowing code is the same for any cron. ``overrides`` replace whole top-level sections
    (a deployment's staging or rate_limit, say).
    """
    raw = yaml.safe_load((REPO / "include" / "usdirect.yaml").read_text())
    for op in raw["operations"].values():
        op["template"] = str((REPO / "include" / op["template"]).resolve())
    raw["operations"]["get_shipments"]["schedule"] = "0 0 * * *"
    raw["tasks"] = {"retries": 0, "retry_delay_seconds": 0}
    raw.update(overrides or {})
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@dataclass
class AirflowStack:
    """A running Airflow plus the sandbox and alert receiver it talks to."""

    home: Path
    env: dict[str, str]
    base_url: str
    sandbox: Any
    alerts: WebhookReceiver
    token: str = ""
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def warehouse_path(self) -> Path:
        return self.home / "warehouse.duckdb"

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        response = httpx.request(
            method,
            f"{self.base_url}/api/v2/{path.lstrip('/')}",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
            **kwargs,
        )
        if response.status_code >= 400:
            raise AssertionError(f"{method} {path} -> {response.status_code}: {response.text[:500]}")
        return response.json() if response.content else None

    def cli(self, *args: str) -> str:
        return airflow_cli(self.env, *args).stdout

    def wait_for_dag(self, dag_id: str, timeout: float = 90) -> dict:
        """The DAG once the DAG processor has parsed and serialized it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.api("GET", "dags", params={"dag_id_pattern": dag_id})["dags"]
            if any(d["dag_id"] == dag_id for d in found):
                return next(d for d in found if d["dag_id"] == dag_id)
            time.sleep(1)
        errors = self.api("GET", "importErrors")
        raise AssertionError(f"DAG {dag_id} not parsed within {timeout}s; import errors: {errors}")

    def trigger(self, dag_id: str, conf: dict | None = None) -> str:
        """Unpause and trigger a run without a logical date (as the UI's Trigger button does)."""
        self.wait_for_dag(dag_id)
        self.api("PATCH", f"dags/{dag_id}", json={"is_paused": False})
        run = self.api("POST", f"dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}})
        return run["dag_run_id"]

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        state = "queued"
        while time.monotonic() < deadline:
            state = self.api("GET", f"dags/{dag_id}/dagRuns/{run_id}")["state"]
            if state in TERMINAL:
                return state
            time.sleep(1)
        raise AssertionError(f"{dag_id} run {run_id} still {state} after {timeout}s\n{self.tail_logs()}")

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        tis = self.api("GET", f"dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        return {ti["task_id"]: ti["state"] for ti in tis}

    def runs(self, dag_id: str) -> list[dict]:
        return self.api("GET", f"dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]

    def seed_orders(self) -> int:
        """Pending orders into the warehouse, as `make airflow` does (no task may run meanwhile)."""
        return seed_orders(self.home, self.sandbox)

    def warehouse_rows(self, sql: str) -> list[tuple]:
        """Query the DuckDB warehouse read-only (call only while no task of the DAGs is running)."""
        import duckdb

        with duckdb.connect(str(self.warehouse_path), read_only=True) as db:
            return db.execute(sql).fetchall()

    def tail_logs(self, lines: int = 30) -> str:
        out = []
        for name in self.procs or COMPONENTS:
            log = self.home / f"{name}.log"
            if log.exists():
                out.append(
                    f"--- {name} ---\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
                )
        return "\n".join(out)


def _wait_healthy(stack: AirflowStack, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        for name, proc in stack.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"airflow {name} exited with {proc.returncode}\n{stack.tail_logs()}")
        try:
            last = httpx.get(f"{stack.base_url}/api/v2/monitor/health", timeout=5).json()
            if all(
                last.get(k, {}).get("status") == "healthy"
                for k in ("metadatabase", "scheduler", "triggerer", "dag_processor")
            ):
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(1)
    raise RuntimeError(f"Airflow not healthy after {timeout}s: {last}\n{stack.tail_logs()}")


def _login(stack: AirflowStack) -> str:
    password = json.loads((stack.home / PASSWORDS_FILE).read_text())["admin"]
    response = httpx.post(
        f"{stack.base_url}/auth/token", json={"username": "admin", "password": password}, timeout=30
    )
    response.raise_for_status()
    return response.json()["access_token"]


@contextmanager
def running_airflow(
    home: Path,
    metadata_db: str,
    extra_env: Mapping[str, str] | None = None,
    settings: Mapping[str, Any] | None = None,
    connections: Mapping[str, Mapping[str, Any]] | None = None,
    workers: Mapping[str, tuple[Sequence[str], Mapping[str, str]]] | None = None,
    extra_dags: Sequence[Path] = (),
) -> Iterator[AirflowStack]:
    """Airflow on ``home`` with the sandbox, the alert receiver, connections and pools, healthy.

    ``extra_env`` configures every process (an executor, say), ``settings`` overrides sections of
    the usdirect settings file, ``connections`` come on top of the demo ones, and ``workers`` are
    more processes (name -> `airflow` arguments and environment of their own), started after
    the scheduler, DAG processor, API server and triggerer. ``extra_dags`` are more DAG files (an
    example of ``examples/``) for the DAGs folder.
    """
    from sandbox.runner import start_sandbox

    dags = home / "dags"
    dags.mkdir()
    for dag_file in (REPO / "dags").glob("*.py"):
        shutil.copy(dag_file, dags / dag_file.name)
    shutil.copy(REPO / "tests" / "e2e" / "harness_dag.py", dags / f"{HARNESS_DAG}.py")
    for dag_file in extra_dags:
        shutil.copy(dag_file, dags / dag_file.name)
    api_port = free_port()
    env = airflow_env(
        home,
        api_port,
        {
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_db,
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "USDIRECT_CONFIG": str(e2e_config(home / "usdirect.yaml", settings)),
            **(extra_env or {}),
        },
    )
    processes = {name: ([name], {}) for name in COMPONENTS} | dict(workers or {})
    alerts = WebhookReceiver().start()
    with start_sandbox(seed=42, catalog_size=300, feed_limit=0, start_time=SANDBOX_START) as sandbox:
        stack = AirflowStack(home, env, f"http://127.0.0.1:{api_port}", sandbox, alerts)
        airflow_cli(env, "db", "migrate")
        import_connections(
            env, {**demo_connections(sandbox.connections(), home, alerts.port), **(connections or {})}
        )
        import_pools(env, _load_config(env))
        try:
            for name, (args, own_env) in processes.items():
                with (home / f"{name}.log").open("wb") as log:
                    stack.procs[name] = subprocess.Popen(
                        [sys.executable, "-m", "airflow", *args],
                        env={**env, **own_env},
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
            _wait_healthy(stack)
            stack.token = _login(stack)
            yield stack
        finally:
            for proc in stack.procs.values():
                stop_process_group(proc, grace=10)
            alerts.stop()


def _load_config(env: dict[str, str]) -> Any:
    from usdirect.settings.config import load_config

    return load_config(env["USDIRECT_CONFIG"])


# Screenshots and traces of the browser tests.
ARTIFACTS = REPO / "test-artifacts"


def require_dag_file(dag_id: str) -> None:
    if not (REPO / "dags" / f"{dag_id}.py").exists():
        pytest.skip(f"dags/{dag_id}.py does not exist yet: its end-to-end run starts once the DAG lands")


def settle(stack: AirflowStack, dag_id: str, timeout: float = 120) -> None:
    """Pause the DAG once none of its runs is queued or running (scheduled runs included).

    It is paused only once it is quiet: Airflow neither starts a paused DAG's queued runs nor
    schedules the remaining tasks of its running ones, so a run in flight at the pause (a schedule
    that fired a moment before, say at a quarter-hour) would stay queued or running for good. A run
    the schedule created between the last look and the pause is let finish (the DAG is unpaused
    again until it has).
    """
    deadline = time.monotonic() + timeout
    active: list[tuple[str, str]] = []
    while time.monotonic() < deadline:
        active = _active_runs(stack, dag_id)
        if not active:
            stack.api("PATCH", f"dags/{dag_id}", json={"is_paused": True})
            active = _active_runs(stack, dag_id)
            if not active:
                return
            stack.api("PATCH", f"dags/{dag_id}", json={"is_paused": False})
        time.sleep(1)
    raise AssertionError(f"{dag_id} still has active runs after {timeout}s: {active}\n{stack.tail_logs()}")


def _active_runs(stack: AirflowStack, dag_id: str) -> list[tuple[str, str]]:
    return [(r["dag_run_id"], r["state"]) for r in stack.runs(dag_id) if r["state"] not in TERMINAL]

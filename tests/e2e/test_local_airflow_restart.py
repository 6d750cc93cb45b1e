"""`make airflow` stopped and started again: sandbox and warehouse carry on together; then reset.

Runs scripts/local_airflow.py itself (as `make airflow` does) on a temporary AIRFLOW_HOME, free
ports and a Postgres metadata database of its own, reads its banner, and stops it with Ctrl-C.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest

from scripts.local_state import LocalState
from tests.ops.test_local_airflow import closed_port_dsn
from tests.support.airflow_stack import free_port
from tests.support.paths import REPO
from tests.support.postgres import PG_ADMIN_DSN

pytestmark = pytest.mark.e2e

BANNER_END = "Stop everything with Ctrl-C"


class LocalAirflow:
    """One `make airflow` session: started, its banner read, stopped with Ctrl-C."""

    def __init__(self, env: dict[str, str], sigint_ignored: bool = False) -> None:
        self.env = env
        # Started as a shell starts a background job: with SIGINT ignored, which the children
        # inherit; Ctrl-C (a SIGINT sent to it) must stop everything all the same.
        self.sigint_ignored = sigint_ignored
        self.proc: subprocess.Popen[str] | None = None
        self.output = ""
        self.sessions: set[int] = set()  # the session of `airflow standalone` and its components

    def start(self, timeout: float = 240) -> str:
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "scripts" / "local_airflow.py")],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=_ignore_sigint if self.sigint_ignored else None,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and BANNER_END not in self.output:
            if select.select([self.proc.stdout], [], [], 1)[0]:
                line = self.proc.stdout.readline()
                if not line and self.proc.poll() is not None:
                    break
                self.output += line
        assert BANNER_END in self.output, f"no banner within {timeout}s:\n{self.output[-3000:]}"
        self._note_sessions()
        return self.output

    def _note_sessions(self) -> None:
        """Remember the sessions of the processes started: Airflow's components rename themselves
        (setproctitle), which overwrites their environment, so AIRFLOW_HOME cannot find them."""
        assert self.proc is not None
        with suppress(psutil.NoSuchProcess):
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                with suppress(psutil.NoSuchProcess, ProcessLookupError):
                    self.sessions.add(os.getsid(child.pid))
        self.sessions.discard(os.getsid(0))

    def stop(self) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        self._note_sessions()
        self.proc.send_signal(signal.SIGINT)  # Ctrl-C
        rest, _ = self.proc.communicate(timeout=240)
        self.output += rest
        return self.output

    def kill(self) -> None:
        """After a failed assertion: Ctrl-C first, so the sandbox and Airflow it started stop too;
        then whatever still runs with this session's AIRFLOW_HOME, so a failure leaks no process."""
        if self.proc is not None and self.proc.poll() is None:
            self._note_sessions()
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        kill_leftovers(self.env["AIRFLOW_HOME"], self.sessions)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def kill_leftovers(home: str, sessions: set[int]) -> None:
    """Kill every process started for the session on ``home``: those with its AIRFLOW_HOME (the
    script, the sandbox) and those in the sessions noted (Airflow's renamed components)."""
    for proc in psutil.process_iter():
        try:
            if proc.pid == os.getpid():
                continue
            if os.getsid(proc.pid) in sessions or proc.environ().get("AIRFLOW_HOME") == home:
                proc.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, ProcessLookupError):
            continue


def run_script(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "local_airflow.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def local_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment `make airflow` exports, on a temp home, free ports and its own database."""
    database = f"usdirect_airflow_restart_{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if k != "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"}
    env.update(
        {
            "AIRFLOW_HOME": str(tmp_path / ".airflow"),
            "AIRFLOW_PORT": str(free_port()),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "USDIRECT_AIRFLOW_PG": PG_ADMIN_DSN,
            "USDIRECT_AIRFLOW_DB": database,
            "USDIRECT_CONFIG": str(REPO / "include" / "usdirect.yaml"),
        }
    )
    try:
        yield env
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def banner_value(output: str, label: str) -> str:
    found = re.findall(rf"^{re.escape(label)}:\s+(.*)$", output, flags=re.MULTILINE)
    assert found, f"banner line {label!r} missing:\n{output[-3000:]}"
    return found[-1]


def test_restart_continues_sandbox_and_warehouse_and_reset_starts_all_over(
    local_env: dict[str, str],
) -> None:
    home = Path(local_env["AIRFLOW_HOME"])
    state = LocalState(home)
    database = local_env["USDIRECT_AIRFLOW_DB"]
    first = LocalAirflow(local_env)
    try:
        out = first.start()
        assert f"Postgres, postgresql+psycopg://postgres@127.0.0.1:5432/{database}" in banner_value(
            out, "Metadata DB"
        )
        assert "WARNING" not in out
        assert banner_value(out, "Sandbox state").startswith("new (seed 42")
        assert banner_value(out, "Warehouse").endswith("(new)")
        orders = banner_value(out, "Orders")
        seeded = re.match(r"(\d+) US Direct fulfillment requests on the platform: (\d+) new", orders)
        assert seeded and int(seeded[1]) == int(seeded[2]) > 0
        admin = re.search(r"\(admin API (\S+)\)", banner_value(out, "US Direct sandbox"))
        assert admin
        moved = httpx.post(f"{admin[1]}/clock/advance", json={"days": 2}, timeout=30).json()["now"]
        first.stop()
    finally:
        first.kill()
    assert first.proc is not None and first.proc.returncode is not None
    assert state.sandbox_state.exists() and state.warehouse.exists()
    assert not state.marker.exists(), "a clean stop leaves no unfinished-session marker"

    second = LocalAirflow(local_env, sigint_ignored=True)
    try:
        out = second.start()
        continued = banner_value(out, "Sandbox state")
        assert continued.startswith("continued from the previous session")
        assert moved.replace("Z", "+00:00") in continued, "the sandbox clock went on where it stopped"
        assert "kept from the previous session" in banner_value(out, "Warehouse")
        assert f": 0 new seeded into the warehouse as pending, {seeded[1]} already there" in banner_value(
            out, "Orders"
        )
        second.stop()
    finally:
        second.kill()

    done = run_script(local_env, "--reset")
    assert done.returncode == 0, done.stderr
    assert f"dropped the Postgres database {database}" in done.stdout
    assert not state.warehouse.exists() and not state.sandbox_state.exists()
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        assert conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone() is None


def test_without_postgres_it_runs_on_sqlite_and_warns_why_that_is_degraded(local_env: dict[str, str]) -> None:
    home = Path(local_env["AIRFLOW_HOME"])
    session = LocalAirflow({**local_env, "USDIRECT_AIRFLOW_PG": closed_port_dsn()})
    try:
        out = session.start()
        assert banner_value(out, "Metadata DB").startswith(f"SQLite, {home / 'airflow.db'}")
        assert "WARNING: PostgreSQL at postgresql://postgres@127.0.0.1:" in out
        assert "database is locked" in out and "restart `make airflow`" in out
        session.stop()
    finally:
        session.kill()
    assert (home / "airflow.db").exists()

"""`make airflow`'s set-up: the metadata DB it picks, the shell it prepares, the state it keeps."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from scripts import local_metadata
from scripts.local_airflow import airflow_env, prepare
from scripts.local_state import InconsistentStateError, LocalState
from tests.support.paths import REPO
from tests.support.postgres import PG_ADMIN_DSN, temporary_database


def closed_port_dsn() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


def database_exists(name: str) -> bool:
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


@pytest.fixture
def own_database(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A database name for `make airflow`'s metadata that no real `make airflow` uses; dropped after."""
    monkeypatch.delenv(local_metadata.EXPLICIT, raising=False)
    name = f"usdirect_airflow_test_{uuid.uuid4().hex[:8]}"
    try:
        yield name
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- the metadata DB ------------------------------------------------------------------------------


def test_postgres_answers_so_the_metadata_db_is_a_postgres_database_of_its_own(
    tmp_path: Path, own_database: str
) -> None:
    chosen = local_metadata.choose(tmp_path, PG_ADMIN_DSN, own_database)
    assert chosen.url.startswith("postgresql+psycopg://")
    assert chosen.url.endswith(f"/{own_database}")
    assert chosen.warning is None
    assert chosen.label.startswith("Postgres")
    assert database_exists(own_database), "created on first use"
    assert local_metadata.choose(tmp_path, PG_ADMIN_DSN, own_database).url == chosen.url, "and reused"
    assert local_metadata.drop(tmp_path, PG_ADMIN_DSN, own_database) == [
        f"dropped the Postgres database {own_database}"
    ]
    assert not database_exists(own_database)


def test_no_postgres_falls_back_to_sqlite_with_a_warning_that_says_why_and_what_to_do(
    tmp_path: Path, own_database: str
) -> None:
    dsn = closed_port_dsn()
    chosen = local_metadata.choose(tmp_path, dsn, own_database)
    assert chosen.url == f"sqlite:///{tmp_path / 'airflow.db'}"
    assert chosen.label.startswith("SQLite")
    assert chosen.warning is not None
    assert dsn.rsplit("/", 1)[0].split("@")[1] in chosen.warning, "names where Postgres was looked for"
    assert "database is locked" in chosen.warning
    assert "Start PostgreSQL" in chosen.warning and "USDIRECT_AIRFLOW_PG" in chosen.warning
    assert "restart `make airflow`" in chosen.warning


def test_an_explicit_sql_alchemy_conn_is_used_as_it_is_and_its_password_not_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(local_metadata.EXPLICIT, "postgresql+psycopg://airflow:s3cret-pw@db:5432/meta")
    chosen = local_metadata.choose(tmp_path, closed_port_dsn())
    assert chosen.url == "postgresql+psycopg://airflow:s3cret-pw@db:5432/meta"
    assert "s3cret-pw" not in chosen.label
    assert chosen.warning is None


# --- the shell next to `make airflow` -------------------------------------------------------------


def readme_shell_command() -> str:
    """The command the README gives for testing a connection from a shell next to `make airflow`."""
    readme = (REPO / "README.md").read_text()
    found = re.findall(r"`([^`]*env\.sh[^`]*airflow connections test usdirect_default)`", readme)
    assert found, "README.md must say how to run `airflow connections test` next to `make airflow`"
    return found[0]


def test_airflow_connections_test_works_from_a_plain_shell_as_the_readme_writes_it(
    tmp_path: Path, sandbox
) -> None:
    from usdirect.settings.config import load_config

    home = tmp_path / ".airflow"
    home.mkdir()
    with temporary_database("usdirect_shell_meta") as dsn:
        url = dsn.replace("postgresql://", "postgresql+psycopg://", 1)
        env = airflow_env(home, 8080, {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url})
        prepare(env, home, sandbox, 9, load_config(REPO / "include" / "usdirect.yaml"))
        assert oct((home / "env.sh").stat().st_mode & 0o777) == "0o600"
        shell = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}  # nothing of ours
        done = subprocess.run(
            ["bash", "-c", readme_shell_command()],
            cwd=tmp_path,
            env=shell,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    assert "Connection success!" in out
    for secret in (sandbox.api_token, sandbox.reseller_token, sandbox.feed_url.split("key=")[1]):
        assert secret not in out
        assert secret not in (home / "env.sh").read_text()


# --- the state kept across restarts ---------------------------------------------------------------


def test_fresh_home_then_a_clean_session_is_restored_next_time(tmp_path: Path) -> None:
    state = LocalState(tmp_path)
    assert state.check() == "fresh"
    assert state.end() is True, "nothing was started (the sandbox failed to start): nothing to save"
    state.begin()
    state.warehouse.write_bytes(b"duckdb")
    state.sandbox_state.write_bytes(b"saved on shutdown")
    assert state.end() is True
    assert not state.marker.exists()
    assert state.check() == "restored"


def test_a_session_that_ended_without_saving_the_sandbox_asks_for_a_reset(tmp_path: Path) -> None:
    state = LocalState(tmp_path)
    state.warehouse.write_bytes(b"duckdb")
    state.sandbox_state.write_bytes(b"from an older session")
    os.utime(state.sandbox_state, (1, 1))
    state.begin()
    assert state.end() is False, "the state file predates this session"
    state.marker.write_text(json.dumps({"pid": 2**22 + 1, "started_at": "2026-12-01T10:00:00+00:00"}))
    with pytest.raises(InconsistentStateError, match=r"ended without saving.*make airflow-reset"):
        state.check()


@pytest.mark.parametrize(
    ("keep", "message"),
    [
        ("warehouse", r"warehouse\.duckdb exists but .*sandbox-state\.pickle does not.*make airflow-reset"),
        (
            "sandbox_state",
            r"sandbox-state\.pickle exists but .*warehouse\.duckdb does not.*make airflow-reset",
        ),
    ],
)
def test_a_warehouse_without_its_sandbox_or_the_reverse_is_refused(
    tmp_path: Path, keep: str, message: str
) -> None:
    state = LocalState(tmp_path)
    getattr(state, keep).write_bytes(b"x")
    with pytest.raises(InconsistentStateError, match=message):
        state.check()


def test_reset_removes_everything_kept_but_not_while_make_airflow_runs(tmp_path: Path) -> None:
    state = LocalState(tmp_path)
    for path in (state.warehouse, state.sandbox_state, tmp_path / "alerts.log"):
        path.write_bytes(b"x")
    running = subprocess.Popen(["sleep", "30"])
    try:
        state.marker.write_text(json.dumps({"pid": running.pid, "started_at": "now"}))
        with pytest.raises(InconsistentStateError, match=rf"running .*pid {running.pid}.*stop it"):
            state.reset()
        with pytest.raises(InconsistentStateError, match="already running"):
            state.check()
    finally:
        running.kill()
        running.wait()
    removed = state.reset()
    assert len(removed) == 4
    assert not any(tmp_path.iterdir())
    assert state.check() == "fresh"


def test_each_checkout_gets_a_metadata_database_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("USDIRECT_AIRFLOW_DB", raising=False)
    one, other = local_metadata.database_for(tmp_path / "a"), local_metadata.database_for(tmp_path / "b")
    assert one.startswith("usdirect_airflow_") and other.startswith("usdirect_airflow_")
    assert one != other, "a reset in one checkout must never drop another's metadata"
    assert local_metadata.database_for(tmp_path / "a") == one
    monkeypatch.setenv("USDIRECT_AIRFLOW_DB", "my_airflow")
    assert local_metadata.database_for(tmp_path / "a") == "my_airflow"

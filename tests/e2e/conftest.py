"""Fixtures for the end-to-end tests: a real Airflow per module (see tests/support/airflow_stack.py)
and a logged-in headless Chromium on its UI."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.airflow_stack import ARTIFACTS, AirflowStack, running_airflow
from tests.support.postgres import temporary_database


@pytest.fixture(scope="module")
def metadata_db() -> Iterator[str]:
    """SQLAlchemy URL of a Postgres database created for Airflow's metadata and dropped afterwards."""
    with temporary_database("usdirect_e2e_meta") as dsn:
        yield dsn.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture(scope="module")
def airflow_stack(tmp_path_factory: pytest.TempPathFactory, metadata_db: str) -> Iterator[AirflowStack]:
    """The LocalExecutor deployment (as `airflow standalone` runs it) shared by a module's tests;
    stopped after the module, so it neither loads the machine nor meets later tests' runs."""
    with running_airflow(tmp_path_factory.mktemp("e2e-airflow-home"), metadata_db) as stack:
        yield stack


# --- headless Chromium on the Airflow UI (connection form, UI backfill) ---------------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser_page(airflow_stack: AirflowStack) -> Iterator[Any]:
    """A logged-in page (the API's JWT in the UI's cookie) in a throw-away Chromium profile."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed: run `make browser-deps` (Debian packages chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in requirements-dev.txt")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as pw, tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        context = pw.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,  # playwright adds --headless
            args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 1000},
        )
        context.add_cookies([{"name": "_token", "value": airflow_stack.token, "url": airflow_stack.base_url}])
        try:
            yield context.new_page()
        finally:
            context.close()

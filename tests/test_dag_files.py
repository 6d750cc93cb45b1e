"""Every DAG file imports cleanly and keeps heavy libraries out of parse time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parent.parent / "dags"
DAG_FILES = sorted(p for p in DAGS.glob("*.py") if not p.name.startswith("_"))
HEAVY = ("pandas", "pyarrow", "httpx", "duckdb", "psycopg")


def test_dagbag_imports_without_errors() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    assert set(bag.dag_ids) >= expected_dag_ids()


def expected_dag_ids() -> set[str]:
    """DAG ids promised by the README for the operations that exist so far."""
    return {p.stem for p in DAG_FILES}


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_does_not_import_heavy_modules_at_parse_time(dag_file: Path) -> None:
    # airflow.sdk itself imports httpx in 3.3, so only what the DAG file adds on top counts.
    code = (
        "import runpy, sys\n"
        "import airflow.sdk\n"
        "baseline = set(sys.modules)\n"
        f"runpy.run_path({str(dag_file)!r})\n"
        f"loaded = [m for m in {HEAVY!r} if m in sys.modules and m not in baseline]\n"
        "print('LOADED=' + ','.join(loaded))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    marker = [line for line in out.stdout.splitlines() if line.startswith("LOADED=")][-1]
    assert marker == "LOADED=", f"{dag_file.name} imports at parse time: {marker}"

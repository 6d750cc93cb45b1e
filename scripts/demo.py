"""`make demo`: every operation once against the bundled sandbox, into the embedded DuckDB warehouse.

Runs each DAG as `airflow dags test` does (``dag.test()``: a manual run, every task executed in
this process), advancing the sandbox's simulated clock between steps so that orders ship and get
invoiced, then prints a summary read back from the warehouse (`usdirect_runs`, `usdirect_rejects`,
the reconciliation view). Every figure printed comes from the warehouse; nothing is computed or
assumed here. The five runs share one Python process: starting Airflow five times cost more than
the runs themselves. Each run's log goes to its own file, as `airflow dags test` would print it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
HOME = Path(os.environ.get("AIRFLOW_HOME", REPO / ".airflow"))
DEMO_DIR = HOME / "demo"
WAREHOUSE = DEMO_DIR / "warehouse.duckdb"

sys.path[:0] = [str(REPO), str(REPO / "plugins")]


def _env(connections: dict[str, dict]) -> dict[str, str]:
    env = os.environ.copy()
    env.update(
        {
            "AIRFLOW_HOME": str(HOME),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "USDIRECT_CONFIG": env.get("USDIRECT_CONFIG", str(REPO / "include" / "usdirect.yaml")),
            "USDIRECT_TARGETS": "warehouse",
            # Quiet on the console (filling the DagBag; the DuckDB hook's line per connection)
            "AIRFLOW__LOGGING__NAMESPACE_LEVELS": "airflow.dag_processing=WARNING "
            "airflow.task.hooks.airflow.providers.duckdb=WARNING",
        }
    )
    for conn_id, conn in connections.items():
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)
    return env


def _migrate(log: Path) -> tuple[int, float]:
    """`airflow db migrate`, in this process: a second interpreter would import Airflow again."""
    started = time.monotonic()
    with _output_to(log):
        try:
            from airflow.utils.db import upgradedb

            upgradedb()
            rc = 0
        except Exception:
            traceback.print_exc()
            rc = 1
    return rc, time.monotonic() - started


@contextmanager
def _output_to(log: Path) -> Iterator[None]:
    """Send everything written to stdout/stderr (Airflow's task logs included) to ``log``."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with log.open("w") as fh:
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _run_dag(dag: Any, logical_date: dt.datetime | None, conf: dict | None, log: Path) -> tuple[int, float]:
    """``dag.test()`` (what `airflow dags test` calls); 0 when the run succeeded."""
    started = time.monotonic()
    with _output_to(log):
        try:
            run = dag.test(logical_date=logical_date, run_conf=conf)
            rc = 0 if str(run.state) == "success" else 1
        except Exception:
            traceback.print_exc()
            rc = 1
    return rc, time.monotonic() - started


def main() -> int:
    from demo_steps import STEPS, Demo, print_summary

    from sandbox.runner import start_sandbox

    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    WAREHOUSE.unlink(missing_ok=True)
    print(f"AIRFLOW_HOME={HOME}  warehouse={WAREHOUSE}")
    os.environ.update(_env({}))  # before Airflow is imported: it reads its settings at import
    rc, secs = _migrate(DEMO_DIR / "db-migrate.log")
    if rc:
        print(f"airflow db migrate failed; see {DEMO_DIR / 'db-migrate.log'}")
        return rc
    print(f"metadata DB migrated ({secs:.1f}s)")
    with start_sandbox(catalog_size=5000, seed=42, dirty=True) as sb:
        connections = sb.connections()
        connections["usdirect_warehouse"] = {"conn_type": "duckdb", "host": str(WAREHOUSE)}
        os.environ.update(_env(connections))  # read when a task looks a connection up
        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(dag_folder=str(REPO / "dags"))
        for path, error in bag.import_errors.items():
            print(f"DAG file {path} does not import:\n{error}")
        demo = Demo(sandbox=sb)
        results = []
        for step in STEPS:
            dag = bag.get_dag(step.dag_id)
            if dag is None:
                print(f"- {step.dag_id}: not built, skipped")
                continue
            step.before(demo)
            log = DEMO_DIR / f"{step.dag_id}.log"
            rc, secs = _run_dag(dag, step.logical_date(demo), step.conf, log)
            results.append((step.dag_id, rc, secs, log))
            print(f"- {step.dag_id}: {'ok' if rc == 0 else 'FAILED'} in {secs:.1f}s (log: {log})", flush=True)
        print_summary(WAREHOUSE, results)
    return 1 if bag.import_errors or any(rc for _, rc, _, _ in results) else 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())

"""`make demo`: every operation once against the bundled sandbox, into the embedded DuckDB warehouse.

Runs each DAG the way a data engineer would test it (`airflow dags test`), advancing the sandbox's
simulated clock between steps so that orders ship and get invoiced, then prints a summary read
back from the warehouse (`usdirect_runs`, `usdirect_rejects`, the reconciliation view). Every
figure printed comes from the warehouse; nothing is computed or assumed here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

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
        }
    )
    for conn_id, conn in connections.items():
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)
    return env


def _airflow(args: list[str], env: dict[str, str], log: Path) -> tuple[int, float]:
    started = time.monotonic()
    with log.open("w") as fh:
        rc = subprocess.run(
            [sys.executable, "-m", "airflow", *args], env=env, stdout=fh, stderr=fh
        ).returncode
    return rc, time.monotonic() - started


def main() -> int:
    from demo_steps import STEPS, Demo, print_summary

    from sandbox.runner import start_sandbox

    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    WAREHOUSE.unlink(missing_ok=True)
    print(f"AIRFLOW_HOME={HOME}  warehouse={WAREHOUSE}")
    rc, secs = _airflow(["db", "migrate"], _env({}), DEMO_DIR / "db-migrate.log")
    if rc:
        print(f"airflow db migrate failed; see {DEMO_DIR / 'db-migrate.log'}")
        return rc
    print(f"metadata DB migrated ({secs:.1f}s)")
    with start_sandbox(catalog_size=5000, seed=42, dirty=True) as sb:
        connections = sb.connections()
        connections["usdirect_warehouse"] = {"conn_type": "duckdb", "host": str(WAREHOUSE)}
        env = _env(connections)
        os.environ.update(env)  # the demo's own warehouse access (seeding) uses the same connections
        demo = Demo(sandbox=sb)
        results = []
        for step in STEPS:
            if not (REPO / "dags" / f"{step.dag_id}.py").exists():
                print(f"- {step.dag_id}: not built yet, skipped")
                continue
            step.before(demo)
            log = DEMO_DIR / f"{step.dag_id}.log"
            rc, secs = _airflow(["dags", "test", step.dag_id, *step.args(demo)], env, log)
            results.append((step.dag_id, rc, secs, log))
            print(f"- {step.dag_id}: {'ok' if rc == 0 else 'FAILED'} in {secs:.1f}s (log: {log})")
        print_summary(WAREHOUSE, results)
    return 1 if any(rc for _, rc, _, _ in results) else 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())

"""DAG-file parse benchmark: a settings file with N accounts (5 DAGs each), every DAG file parsed
as Airflow 3.3's DAG processor parses it.

Each parse runs in a fresh interpreter, like the processor's per-file child: Airflow is imported
first (the processor's child starts with it loaded), then the timed part is what the child does,
``BundleDagBag`` on the one file (import, DAG validation) followed by the serialization of every DAG
it holds (``_serialize_dags``), in wall-clock and CPU seconds (CPU time is what the file costs;
wall time also carries whatever else the machine is doing). The child also counts how often the
settings file was read and how often a mapping template was checked. Each file is parsed
``repeats`` times; the median is reported.

Target (issue 13): with 200 accounts (1,000 DAGs), each DAG file parses in < 1 s, and the settings
file is read once per parse, not per DAG.
Run alone with: .venv/bin/python benchmarks/bench_parse.py [ACCOUNTS]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
DAGS = REPO / "dags"
TARGET_SECONDS = 1.0

# What the DAG processor's child does with one file, timed after Airflow is imported.
_CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from collections import Counter

import airflow.sdk  # noqa: F401  (loaded in the processor's child before it parses)
import structlog
from airflow.dag_processing.dagbag import BundleDagBag
from airflow.dag_processing.processor import _serialize_dags

import usdirect.settings.config as config
import usdirect.settings.template_check as template_check

reads = Counter()
read, check = config.load_located_yaml, template_check.check_template_spec
config.load_located_yaml = lambda path: (reads.update(["settings"]), read(path))[1]
template_check.check_template_spec = lambda path, kind: (reads.update(["templates"]), check(path, kind))[1]

file = sys.argv[1]
started, cpu = time.perf_counter(), time.process_time()
bag = BundleDagBag(
    dag_folder=file, bundle_path=Path(file).parent, bundle_name="dags-folder", load_op_links=False
)
parsed = time.perf_counter()
serialized, errors = _serialize_dags(bag, structlog.get_logger())
done, cpu = time.perf_counter(), time.process_time() - cpu
print("RESULT=" + json.dumps({
    "dags": len(bag.dags),
    "tasks": sum(len(d.tasks) for d in bag.dags.values()),
    "import_errors": {**bag.import_errors, **errors},
    "parse_s": parsed - started,
    "serialize_s": done - parsed,
    "cpu_s": cpu,
    "settings_reads": reads["settings"],
    "template_checks": reads["templates"],
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def settings_file(folder: Path, accounts: int) -> Path:
    """The bundled settings with ``accounts`` accounts, each on its own connection and schema."""
    raw = yaml.safe_load((REPO / "include" / "usdirect.yaml").read_text(encoding="utf-8"))
    for operation in raw["operations"].values():
        operation["template"] = str((REPO / "include" / operation["template"]).resolve())
    first = raw["accounts"][0]
    raw["accounts"] = [first] + [
        {
            "id": f"acct{i:03d}",
            "usdirect_conn_id": f"usdirect_acct{i:03d}",
            "warehouse_schema": f"usdirect_acct{i:03d}",
            "flxpoint_conn_id": f"flxpoint_acct{i:03d}",
            "targets": ["warehouse", "platform"] if i % 2 else ["warehouse"],
            "pool_slots": 2,
        }
        for i in range(1, accounts)
    ]
    path = folder / "usdirect.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def _parse_once(dag_file: Path, env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(dag_file)], env=env, capture_output=True, text=True, timeout=600
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT=")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"parsing {dag_file.name} failed:\n{out.stderr[-3000:]}")
    result = json.loads(lines[-1].removeprefix("RESULT="))
    if result["import_errors"]:
        raise RuntimeError(f"{dag_file.name} has import errors: {result['import_errors']}")
    return result


def run(accounts: int = 200, repeats: int = 3) -> dict[str, Any]:
    """Parse every DAG file ``repeats`` times in fresh interpreters; one record per file (medians)."""
    results, notes = [], []
    with tempfile.TemporaryDirectory(prefix="bench-parse-") as tmp:
        env = os.environ | {
            "AIRFLOW_HOME": tmp,
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "USDIRECT_CONFIG": str(settings_file(Path(tmp), accounts)),
        }
        for dag_file in sorted(DAGS.glob("usdirect_*.py")):
            runs = [_parse_once(dag_file, env) for _ in range(repeats)]
            total = [r["parse_s"] + r["serialize_s"] for r in runs]
            results.append(
                {
                    "name": f"parse {dag_file.name}",
                    "accounts": accounts,
                    "dags": runs[0]["dags"],
                    "tasks": runs[0]["tasks"],
                    "import_s": round(statistics.median(r["parse_s"] for r in runs), 3),
                    "serialize_s": round(statistics.median(r["serialize_s"] for r in runs), 3),
                    "seconds": round(statistics.median(total), 3),
                    "max_seconds": round(max(total), 3),
                    "cpu_s": round(statistics.median(r["cpu_s"] for r in runs), 3),
                    "settings_reads": max(r["settings_reads"] for r in runs),
                    "template_checks": max(r["template_checks"] for r in runs),
                    "peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs), 1),
                }
            )
    slowest = max(results, key=lambda r: r["seconds"])
    notes.append(
        f"{accounts} accounts, {sum(r['dags'] for r in results):,} DAGs: slowest file {slowest['name'][6:]} "
        f"{slowest['seconds']:.2f} s wall, {slowest['cpu_s']:.2f} s CPU, median of {repeats} "
        f"(target < {TARGET_SECONDS:.0f} s), settings read "
        f"{max(r['settings_reads'] for r in results)}x per parse"
    )
    return {"results": results, "notes": notes}


if __name__ == "__main__":
    report = run(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
    for record in report["results"]:
        print(record)
    print("\n".join(report["notes"]))

"""``dag.test()`` in a fresh Python process, with ``Stats`` initialised as the task runner does.

A process of its own gives the run's whole log as its output (in the test's process, Airflow's log
handler keeps the stream it found when logging was first configured, a capture of an earlier
test), and starts from what a task process starts from: no DuckDB database opened yet, ``Stats``
set up from ``[metrics]`` by ``get_stats_factory``. The environment (connections, settings file,
metadata DB, ``AIRFLOW__METRICS__*``) is the test's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from tests.support.paths import REPO

_SCRIPT = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk._shared.observability.metrics import stats
from airflow.sdk.configuration import conf
from airflow.sdk.observability.metrics import stats_utils

stats.initialize(
    factory=stats_utils.get_stats_factory(),
    export_legacy_names=conf.getboolean("metrics", "legacy_names_on"),
)
dag = DagBag(dag_folder=sys.argv[1]).get_dag(sys.argv[2])
run = dag.test(run_conf=json.loads(sys.argv[3]))
print("TASK STATES " + json.dumps({ti.task_id: str(ti.state) for ti in run.get_task_instances()}))
"""


@dataclass
class DagTestRun:
    states: dict[str, str]
    log: list[str]


def dag_test_in_subprocess(dag_id: str, run_conf: dict[str, Any] | None = None) -> DagTestRun:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(REPO / "dags"), dag_id, json.dumps(run_conf or {})],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    log = (done.stdout + done.stderr).splitlines()
    marker = [line for line in log if line.startswith("TASK STATES ")]
    assert done.returncode == 0 and marker, "\n".join(log[-40:])
    return DagTestRun(json.loads(marker[-1].removeprefix("TASK STATES ")), log)

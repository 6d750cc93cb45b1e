"""settle() (tests/support/airflow_stack.py) against a fake Airflow with Airflow's pause semantics:
a schedule that fires just before the e2e tests settle a DAG must not leave its run frozen.

No Airflow is started (not marked e2e). The Celery e2e once failed this way at a quarter-hour:
settle paused usdirect_get_inventory_changes while its scheduled run was between two tasks, and
the run never finished ("still has active runs after 120s").
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.support.airflow_stack import TERMINAL, settle

DAG_ID = "usdirect_get_inventory_changes"


class PausingAirflow:
    """One DAG with max_active_runs=1. While it is paused the scheduler neither starts its queued
    runs nor schedules the remaining tasks of its running ones; a schedule fires only while it is
    unpaused. Each look at the runs is one scheduler loop; a run needs ``tasks`` loops."""

    def __init__(self, states: list[str], fire_on_pause: bool = False, tasks: int = 3) -> None:
        self.paused = False
        self.fire_on_pause = fire_on_pause  # the schedule fires just before the pause lands
        self.tasks = tasks
        self.dag_runs = [{"dag_run_id": f"run{i}", "state": s, "left": tasks} for i, s in enumerate(states)]

    def api(self, method: str, path: str, json: dict[str, Any]) -> None:
        assert (method, path) == ("PATCH", f"dags/{DAG_ID}")
        if json["is_paused"] and not self.paused and self.fire_on_pause:
            self.fire_on_pause = False
            self.dag_runs.append({"dag_run_id": "scheduled", "state": "queued", "left": self.tasks})
        self.paused = json["is_paused"]

    def runs(self, dag_id: str) -> list[dict]:
        assert dag_id == DAG_ID
        if not self.paused:
            running = [r for r in self.dag_runs if r["state"] == "running"]
            queued = [r for r in self.dag_runs if r["state"] == "queued"]
            if not running and queued:
                queued[0]["state"] = "running"
            for run in running:
                run["left"] -= 1
                if run["left"] == 0:
                    run["state"] = "success"
        return [{k: v for k, v in r.items() if k != "left"} for r in self.dag_runs]

    def tail_logs(self) -> str:
        return ""


@pytest.fixture(autouse=True)
def instant_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """settle's one-second waits on a fake clock."""
    clock = [0.0]

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    monkeypatch.setattr(time, "sleep", sleep)
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])


@pytest.mark.parametrize(
    "states",
    [["success", "running"], ["success", "running", "queued"]],
    ids=["a scheduled run between two tasks", "and one queued behind it"],
)
def test_settle_lets_runs_in_flight_finish_before_it_pauses(states: list[str]) -> None:
    airflow = PausingAirflow(states)
    settle(airflow, DAG_ID, timeout=30)  # type: ignore[arg-type]
    assert airflow.paused
    assert {r["state"] for r in airflow.runs(DAG_ID)} <= TERMINAL


def test_settle_lets_a_run_the_schedule_created_as_it_paused_finish() -> None:
    airflow = PausingAirflow(["success"], fire_on_pause=True)
    settle(airflow, DAG_ID, timeout=30)  # type: ignore[arg-type]
    assert airflow.paused
    assert [r["state"] for r in airflow.runs(DAG_ID)] == ["success", "success"]


def test_settle_names_the_runs_still_active_when_it_gives_up() -> None:
    airflow = PausingAirflow(["running"])
    airflow.paused = True  # paused by someone else with a run in flight: that run cannot finish
    with pytest.raises(AssertionError, match=r"still has active runs after 5s: \[\('run0', 'running'\)\]"):
        settle(airflow, DAG_ID, timeout=5)  # type: ignore[arg-type]

"""Assets on a real Airflow: Get Inventory's event appears through the REST API with its counts and
window, and triggers the example downstream DAG scheduled on the inventory alias; a second run of
an unchanged feed (a 304) emits no event and triggers nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.support.airflow_stack import AirflowStack, running_airflow, settle
from tests.support.paths import REPO

pytestmark = pytest.mark.e2e

INVENTORY = "usdirect_get_inventory"
DOWNSTREAM = "example_usdirect_price_list"
EXAMPLE = REPO / "examples" / "usdirect_price_list_on_inventory.py"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, metadata_db: str) -> Iterator[AirflowStack]:
    with running_airflow(tmp_path_factory.mktemp("assets-home"), metadata_db, extra_dags=[EXAMPLE]) as s:
        yield s


def events(stack: AirflowStack) -> list[dict]:
    """Every Asset event of the inventory DAG's runs."""
    params = {"source_dag_id": INVENTORY, "limit": 100}
    return stack.api("GET", "assets/events", params=params)["asset_events"]


def downstream_runs(stack: AirflowStack, timeout: float, want: int) -> list[dict]:
    """The downstream DAG's runs, once there are ``want`` finished ones (or when ``timeout`` is up)."""
    deadline = time.monotonic() + timeout
    runs: list[dict] = []
    while time.monotonic() < deadline:
        runs = stack.runs(DOWNSTREAM)
        if len(runs) >= want and all(r["state"] in ("success", "failed") for r in runs):
            return runs
        time.sleep(1)
    return runs


def run_inventory(stack: AirflowStack) -> tuple[str, dict[str, str]]:
    """Trigger the inventory DAG; wait until it and any run the unpause started have finished."""
    run_id = stack.trigger(INVENTORY)
    state = stack.wait_run(INVENTORY, run_id, timeout=180)
    settle(stack, INVENTORY)
    tasks = stack.task_states(INVENTORY, run_id)
    assert state == "success", f"{tasks}\n{stack.tail_logs()}"
    return run_id, tasks


def test_inventory_event_triggers_the_downstream_dag_and_a_304_does_not(stack: AirflowStack) -> None:
    stack.wait_for_dag(DOWNSTREAM)
    stack.api("PATCH", f"dags/{DOWNSTREAM}", json={"is_paused": False})

    # Unpausing the DAG also starts its latest scheduled run: the one that fetches the feed first
    # changes the inventory, the other gets a 304.
    run_inventory(stack)
    found = events(stack)
    table = f"duckdb://{stack.warehouse_path}/main/usdirect_inventory"
    assert sorted(e["name"] for e in found) == [table, f"{table}_history"], found
    loaded = next(e for e in found if e["name"] == table)
    extra = loaded["extra"]
    assert loaded["source_task_id"] == "load_inventory_warehouse"
    assert extra["account"] == "main" and extra["changed"] == extra["counts"]["inserted"] == 300
    assert extra["window_start"] and extra["window_end"]

    runs = downstream_runs(stack, timeout=120, want=1)
    assert [(r["run_type"], r["state"]) for r in runs] == [("asset_triggered", "success")], runs
    assert [r["dag_id"] for r in loaded["created_dagruns"]] == [DOWNSTREAM]
    listed = stack.warehouse_rows("SELECT count(*) FROM usdirect_price_list")
    offered = stack.warehouse_rows("SELECT count(*) FROM usdirect_inventory WHERE NOT archived")
    assert listed == offered and offered[0][0] > 0

    _, tasks = run_inventory(stack)  # the feed is unchanged: a 304
    assert tasks["fetch_feed"] == "skipped", tasks
    assert len(events(stack)) == len(found)
    time.sleep(15)  # several scheduler loops: nothing may be queued for the downstream DAG
    assert len(stack.runs(DOWNSTREAM)) == 1

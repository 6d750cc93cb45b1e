"""A backfill started from the Airflow UI's Trigger → Backfill dialog, as a person would start one.

On a SQLite metadata DB this very click produced 503s ("database is locked") and crashed the
scheduler. Here: three days of `usdirect_get_shipments` through the dialog, every run succeeds,
each window is fetched once, no UI request answers 5xx, and the scheduler stays healthy and alive
throughout. Screenshots go to test-artifacts/ (git-ignored).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import httpx
import pytest

from tests.support.airflow_stack import ARTIFACTS, AirflowStack, require_dag_file, settle

pytestmark = pytest.mark.e2e

DAG_ID = "usdirect_get_shipments"
# Days no other end-to-end test backfills (they use 2026-11-20..22), after the sandbox's start.
UI_DAYS = [dt.date(2026, 11, 24), dt.date(2026, 11, 25), dt.date(2026, 11, 26)]
COMPONENTS_HEALTH = ("metadatabase", "scheduler", "triggerer", "dag_processor")


def pick_datetime(page: Any, dialog: Any, label: str, day: dt.date) -> None:
    """Type a date and 00:00 into the From/To picker of the backfill dialog, then close it."""
    field = dialog.get_by_role("group").filter(has=page.get_by_text(label, exact=True))
    field.get_by_test_id("datetime-input").click()
    picker = page.get_by_role("dialog").filter(has=page.get_by_placeholder("YYYY/MM/DD")).last
    picker.get_by_placeholder("YYYY/MM/DD").fill(day.strftime("%Y/%m/%d"))
    picker.get_by_placeholder("HH:mm").fill("00:00")
    dialog.get_by_text("Date Range", exact=True).click()  # closes the picker
    picker.wait_for(state="hidden")


def unhealthy(stack: AirflowStack) -> str | None:
    """Why the stack is not healthy right now, or None: a dead scheduler or a component not healthy."""
    scheduler = stack.procs["scheduler"]
    if scheduler.poll() is not None:
        return f"the scheduler process exited with {scheduler.returncode}"
    health = httpx.get(f"{stack.base_url}/api/v2/monitor/health", timeout=10).json()
    bad = {k: health.get(k) for k in COMPONENTS_HEALTH if health.get(k, {}).get("status") != "healthy"}
    return f"health endpoint reports {bad}" if bad else None


def test_ui_backfill_of_three_days_runs_every_window_and_keeps_the_scheduler_healthy(
    browser_page: Any, airflow_stack: AirflowStack
) -> None:
    require_dag_file(DAG_ID)
    stack, page = airflow_stack, browser_page
    stack.wait_for_dag(DAG_ID)
    known = {b["id"] for b in stack.api("GET", "backfills", params={"dag_id": DAG_ID})["backfills"]}
    server_errors: list[str] = []
    page.on(
        "response",
        lambda r: server_errors.append(f"{r.status} {r.request.method} {r.url}") if r.status >= 500 else None,
    )

    page.goto(f"{stack.base_url}/dags/{DAG_ID}")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog").first
    dialog.get_by_text("Backfill", exact=True).first.click()
    pick_datetime(page, dialog, "From", UI_DAYS[0])
    pick_datetime(page, dialog, "To", UI_DAYS[-1])
    dialog.get_by_text("3 runs will be triggered.").wait_for(timeout=30_000)
    assert dialog.locator("input[type=number]").first.input_value() == "1", "one window at a time"
    page.screenshot(path=str(ARTIFACTS / "ui-backfill-dialog.png"), full_page=True)
    dialog.get_by_role("button", name="Run Backfill").click()
    page.get_by_text("Backfill generated").first.wait_for(timeout=30_000)

    deadline = time.monotonic() + 300
    problems: list[str] = []
    mine: list[dict] = []
    while time.monotonic() < deadline:
        if problem := unhealthy(stack):
            problems.append(problem)
        backfills = stack.api("GET", "backfills", params={"dag_id": DAG_ID})["backfills"]
        mine = [b for b in backfills if b["id"] not in known]
        if mine and all(b["completed_at"] for b in mine):
            break
        time.sleep(2)
    else:
        raise AssertionError(f"the UI backfill did not complete in 300 s: {mine}\n{stack.tail_logs()}")
    page.screenshot(path=str(ARTIFACTS / "ui-backfill-done.png"), full_page=True)
    settle(stack, DAG_ID)

    assert len(mine) == 1, f"one click, one backfill: {mine}"
    assert mine[0]["max_active_runs"] == 1
    wanted = {f"{d.isoformat()}T00:00:00Z": d for d in UI_DAYS}
    runs = [r for r in stack.runs(DAG_ID) if r["run_type"] == "backfill" and r["logical_date"] in wanted]
    assert sorted(r["logical_date"] for r in runs) == sorted(wanted), runs
    assert {r["dag_run_id"]: r["state"] for r in runs} == {r["dag_run_id"]: "success" for r in runs}
    recorded = stack.warehouse_rows(
        "SELECT run_id, CAST(window_start AS DATE), CAST(window_end AS DATE) FROM usdirect_runs "
        f"WHERE dag_id = '{DAG_ID}' AND outcome = 'success' AND window_start IS NOT NULL AND run_id IN "
        f"({', '.join(repr(r['dag_run_id']) for r in runs)})"
    )
    assert sorted({(a, b) for _, a, b in recorded}) == [(d, d + dt.timedelta(days=1)) for d in UI_DAYS]
    assert not problems, f"the scheduler was not healthy during the backfill: {problems[:5]}"
    assert unhealthy(stack) is None
    assert not server_errors, f"the UI got server errors: {server_errors[:5]}"

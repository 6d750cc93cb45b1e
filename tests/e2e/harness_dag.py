"""A small windowed DAG the end-to-end test copies into its DAGs folder to prove the harness itself.

It goes through the same parts as the operation DAGs (pool, failure notifier, operation_run frame
writing usdirect_runs, UsDirectHook against the sandbox, a data-interval timetable), so the harness
is proven before, and independently of, the operation DAGs.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, CronDataIntervalTimetable, task

from usdirect.notifications.notifier import UsDirectFailureNotifier
from usdirect.settings.config import load_config

cfg = load_config()
account = cfg.accounts[0]

with DAG(
    dag_id="usdirect_e2e_harness",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    tags=["usdirect", "e2e"],
    default_args={
        "retries": 0,
        "pool": cfg.pool(account),
        "on_failure_callback": [UsDirectFailureNotifier(account.id, "get_shipments", cfg.alerts.channels)],
    },
):

    @task
    def fetch_window() -> int:
        """Ping US Direct, then read the shipments changed in this run's window (one or more pages)."""
        from usdirect.hooks.usdirect import UsDirectHook
        from usdirect.operators.base import operation_run

        with operation_run("get_shipments", account.id) as run:
            start, _ = run.incremental_window(dt.timedelta(days=1))
            hook = UsDirectHook(account.usdirect_conn_id)
            hook.ping()
            run.record.rows_in = sum(len(page) for page in hook.iter_shipments(start))
            return run.record.rows_in

    fetch_window()

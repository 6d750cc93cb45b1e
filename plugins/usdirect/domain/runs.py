"""The run record (``usdirect_runs``): one row per task run, written even when the task fails."""

from __future__ import annotations

from usdirect.domain.records import FLOAT, INT, INT32, STRING, TIMESTAMP, Field, Record

RUN = Record(
    "run",
    "usdirect_runs",
    (
        Field("run_id", STRING, nullable=False),
        Field("dag_id", STRING, nullable=False),
        Field("task_id", STRING, nullable=False),
        Field("try_number", INT32, nullable=False),
        Field("operation", STRING, nullable=False),
        Field("account", STRING, nullable=False),
        Field("window_start", TIMESTAMP, description="the data interval of a windowed operation"),
        Field("window_end", TIMESTAMP),
        Field("started_at", TIMESTAMP, nullable=False),
        Field("finished_at", TIMESTAMP, nullable=False),
        Field("duration_s", FLOAT, nullable=False),
        Field("outcome", STRING, nullable=False),
        Field("rows_in", INT),
        Field("rows_out", INT),
        Field("rows_rejected", INT),
        Field("rows_changed", INT),
        Field("counts", STRING, nullable=False, description="the detailed counts as JSON"),
        Field("message", STRING),
    ),
)

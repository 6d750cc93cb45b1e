"""Audit tables every operation shares: ``usdirect_runs`` (one row per task run) and
``usdirect_rejects`` (every row or order that could not be processed, with its reason).

A run's outcome and counts are what the demo summary, the alerts and a person debugging a bad
night read first, so they are written even when the task fails.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from usdirect.domain.rejects import KEPT_ROW, REJECT, conform_rejects
from usdirect.domain.runs import RUN
from usdirect.targets.warehouse.sql import Warehouse


@dataclass
class RunRecord:
    """What one task run did; ``rows_*`` are the four headline figures, ``counts`` the detail."""

    run_id: str
    dag_id: str
    task_id: str
    operation: str
    account: str
    try_number: int = 1
    window_start: dt.datetime | None = None
    window_end: dt.datetime | None = None
    started_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    counts: dict[str, Any] = field(default_factory=dict)
    rows_in: int | None = None
    rows_out: int | None = None
    rows_rejected: int | None = None
    rows_changed: int | None = None


def ensure_audit_tables(wh: Warehouse, conn: Any) -> None:
    wh.execute(conn, RUN.create_sql(wh.table(RUN.stored_as)))
    wh.execute(conn, REJECT.create_sql(wh.table(REJECT.stored_as)))
    _add_kept_row_column(wh, conn)


def _add_kept_row_column(wh: Warehouse, conn: Any) -> None:
    """Tables created before ``kept_row_number`` existed get it (checked first: on Postgres an ALTER
    takes an exclusive lock even when it changes nothing)."""
    p = wh.placeholder
    schema = wh.schema
    found = wh.fetchall(
        conn,
        f"SELECT 1 FROM information_schema.columns WHERE table_name = '{REJECT.stored_as}' "
        f"AND column_name = '{KEPT_ROW}' AND table_schema = " + (p if schema else "current_schema()"),
        (schema,) if schema else None,
    )
    if not found:
        table = wh.table(REJECT.stored_as)
        wh.execute(
            conn, f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {KEPT_ROW} {REJECT.field(KEPT_ROW).type.sql}"
        )


def record_run(wh: Warehouse, rec: RunRecord, outcome: str, message: str | None = None) -> None:
    """Append the run's row in its own transaction, so it survives the task's failure."""
    finished = dt.datetime.now(dt.UTC)
    with wh.connect() as conn:
        ensure_audit_tables(wh, conn)
        wh.execute(
            conn,
            f"INSERT INTO {wh.table(RUN.stored_as)} ({', '.join(RUN.names)}) "
            f"VALUES ({wh.marks(len(RUN.names))})",
            (
                rec.run_id,
                rec.dag_id,
                rec.task_id,
                rec.try_number,
                rec.operation,
                rec.account,
                rec.window_start,
                rec.window_end,
                rec.started_at,
                finished,
                (finished - rec.started_at).total_seconds(),
                outcome,
                rec.rows_in,
                rec.rows_out,
                rec.rows_rejected,
                rec.rows_changed,
                json.dumps(rec.counts, sort_keys=True, default=str),
                message,
            ),
        )


def write_rejects(wh: Warehouse, conn: Any, run_id: str, rejects: pa.Table) -> int:
    """Append rejects (schema ``REJECT_SCHEMA``) for a run; re-running a run replaces its rows."""
    p = wh.placeholder
    ensure_audit_tables(wh, conn)
    t = wh.table(REJECT.stored_as)
    ops = sorted(set(rejects.column("operation").to_pylist())) if rejects.num_rows else []
    for op in ops:
        wh.execute(conn, f"DELETE FROM {t} WHERE run_id = {p} AND operation = {p}", (run_id, op))
    if rejects.num_rows == 0:
        return 0
    data = conform_rejects(rejects)
    now = pa.array([dt.datetime.now(dt.UTC)] * data.num_rows, pa.timestamp("us", tz="UTC"))
    data = data.append_column("run_id", pa.array([run_id] * data.num_rows, pa.string()))
    data = data.append_column("recorded_at", now)
    return wh.load_arrow(conn, t, data)

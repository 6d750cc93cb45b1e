"""Where each windowed DAG stopped reading: ``usdirect_watermarks``, one row per DAG and target.

A target's row moves forward only after that target took a run's window, and only when the window
joins on to what it already had (a backfill of an old window never moves it back, and a window
that leaves a hole never moves it past the hole). The next scheduled or manual run starts at the
earliest row among the account's targets, so nothing one target missed is skipped. The table lives
on the account's warehouse connection, which platform-only accounts keep as well (feed state and
the publish ledger are there too).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from usdirect.targets.warehouse.sql import Warehouse

TABLE = "usdirect_watermarks"
DDL = """
CREATE TABLE IF NOT EXISTS {t} (
    dag_id TEXT NOT NULL,
    target TEXT NOT NULL,
    window_start TIMESTAMPTZ,
    window_end TIMESTAMPTZ NOT NULL,
    run_id TEXT NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (dag_id, target)
)"""


def _utc(value: Any) -> dt.datetime | None:
    if not isinstance(value, dt.datetime):
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def ensure_table(wh: Warehouse, conn: Any) -> None:
    wh.execute(conn, DDL.format(t=wh.table(TABLE)))


def read_watermark(wh: Warehouse, dag_id: str, targets: Iterable[str]) -> dt.datetime | None:
    """The earliest window end among ``targets`` that have one; None when none of them has."""
    p = wh.placeholder
    wanted = set(targets)
    with wh.connect() as conn:
        ensure_table(wh, conn)
        rows = wh.fetchall(
            conn, f"SELECT target, window_end FROM {wh.table(TABLE)} WHERE dag_id = {p}", (dag_id,)
        )
    ends = [_utc(end) for target, end in rows if target in wanted]
    return min((e for e in ends if e is not None), default=None)


def advance_watermark(
    wh: Warehouse,
    dag_id: str,
    target: str,
    window: tuple[dt.datetime, dt.datetime],
    run_id: str,
) -> None:
    """Record that ``target`` holds everything up to ``window``'s end, if the window joins on."""
    p = wh.placeholder
    start, end = window
    t = wh.table(TABLE)
    with wh.connect() as conn:
        ensure_table(wh, conn)
        wh.execute(
            conn,
            f"INSERT INTO {t} AS w (dag_id, target, window_start, window_end, run_id, recorded_at) "
            f"VALUES ({p}, {p}, CAST({p} AS TIMESTAMPTZ), CAST({p} AS TIMESTAMPTZ), {p}, "
            f"CAST({p} AS TIMESTAMPTZ)) "
            "ON CONFLICT (dag_id, target) DO UPDATE SET window_start = EXCLUDED.window_start, "
            "window_end = EXCLUDED.window_end, run_id = EXCLUDED.run_id, recorded_at = EXCLUDED.recorded_at "
            "WHERE EXCLUDED.window_end > w.window_end AND EXCLUDED.window_start <= w.window_end",
            (dag_id, target, start, end, run_id, dt.datetime.now(dt.UTC)),
        )

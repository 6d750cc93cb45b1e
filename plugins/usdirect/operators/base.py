"""The frame every task body runs in: settings, data window, staging, audit row and summary.

Operators stay thin: they open ``operation_run`` and call a plain pipeline function. The audit row
is written on success, skip and failure alike, so ``usdirect_runs`` tells the whole story.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from usdirect.config import Account, Config, ConfigError, load_config
from usdirect.errors import PermanentError

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from usdirect.targets.audit import RunRecord
    from usdirect.targets.sql import Warehouse

log = logging.getLogger(__name__)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def find_account(cfg: Config, account_id: str) -> Account:
    for account in cfg.accounts:
        if account.id == account_id:
            return account
    raise ConfigError(
        f"{cfg.path}: account {account_id!r} is not in 'accounts' (known: {[a.id for a in cfg.accounts]}). "
        "Fix: put the account back, or delete its DAG runs: its DAGs go once the DAG files are parsed again"
    )


@dataclass
class OperationRun:
    """What a task body needs to know about the run it is part of."""

    operation: str
    cfg: Config
    account: Account
    record: RunRecord
    run_id: str
    dag_id: str
    window: tuple[dt.datetime | None, dt.datetime | None]
    params: dict[str, Any] = field(default_factory=dict)
    _warehouse: Warehouse | None = None

    @property
    def targets(self) -> tuple[str, ...]:
        return self.cfg.targets(self.account)

    @property
    def settings(self) -> Any:
        return self.cfg.operations[self.operation]

    def warehouse(self) -> Warehouse | None:
        """The account's warehouse, or None when 'warehouse' is not among its targets."""
        if "warehouse" not in self.targets:
            return None
        if self._warehouse is None:
            from usdirect.targets.sql import Warehouse

            self._warehouse = Warehouse.from_conn_id(
                self.account.warehouse_conn_id, schema=self.cfg.warehouse.schema_
            )
        return self._warehouse

    def staging(self, *parts: str) -> ObjectStoragePath:
        """Run-scoped staging location shared by the run's tasks (local folder or object store)."""
        return self.staging_of(self.run_id, *parts)

    def staging_of(self, run_id: str, *parts: str) -> ObjectStoragePath:
        """The staging location of a run of this DAG (an earlier run's files, for example)."""
        from airflow.sdk import ObjectStoragePath

        base = self.cfg.staging_url()
        if "://" not in base:
            base = "file://" + base
        path = ObjectStoragePath(base, conn_id=self.cfg.staging.conn_id)
        path = path / self.dag_id / _UNSAFE.sub("_", run_id)
        for part in parts:
            path = path / part
        return path

    def incremental_window(self, lookback: dt.timedelta) -> tuple[dt.datetime, dt.datetime]:
        """The window an incremental operation covers.

        Scheduled runs and backfills own their data interval. A run without one (manual trigger,
        asset event, or a trigger timetable where start == end) continues from the end of the last
        successful window in ``usdirect_runs``, or covers ``lookback`` when there is none.
        """
        start, end = self.window
        if start is None or end is None or start >= end:
            end = dt.datetime.now(dt.UTC)
            start = self._last_successful_window_end() or end - lookback
        self.record.window_start, self.record.window_end = start, end
        return start, end

    def _last_successful_window_end(self) -> dt.datetime | None:
        wh = self.warehouse()
        if wh is None:
            return None
        from usdirect.targets.audit import ensure_audit_tables

        with wh.connect() as conn:
            ensure_audit_tables(wh, conn)
            rows = wh.fetchall(
                conn,
                f"SELECT max(window_end) FROM {wh.table('usdirect_runs')} "
                "WHERE dag_id = %s AND outcome = 'success'",
                (self.dag_id,),
            )
        value = rows[0][0] if rows else None
        if isinstance(value, dt.datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value


def _summary(run: OperationRun, outcome: str, message: str | None) -> str:
    rec = run.record
    lines = [
        f"usdirect {run.operation} [{run.account.id}] {outcome.upper()} run={run.run_id}",
        f"  window: {rec.window_start} → {rec.window_end}",
        f"  in={rec.rows_in} out={rec.rows_out} rejected={rec.rows_rejected} changed={rec.rows_changed}",
    ]
    lines += [f"  {k}: {v}" for k, v in sorted(rec.counts.items())]
    if message:
        lines.append(f"  message: {message}")
    return "\n".join(lines)


@contextmanager
def operation_run(operation: str, account_id: str) -> Iterator[OperationRun]:
    """Open the run frame for the current Airflow task; records outcome and logs a summary."""
    from airflow.sdk import get_current_context
    from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException, AirflowSkipException

    from usdirect.targets.audit import RunRecord, record_run

    ctx = get_current_context()
    try:
        cfg = load_config()
        account = find_account(cfg, account_id)
    except PermanentError as exc:  # the settings were broken after the DAG file was parsed
        raise AirflowFailException(str(exc)) from exc
    ti = ctx["ti"]
    run_id = ctx["run_id"]
    window = (ctx.get("data_interval_start"), ctx.get("data_interval_end"))
    record = RunRecord(
        run_id=run_id,
        dag_id=ti.dag_id,
        task_id=ti.task_id,
        operation=operation,
        account=account.id,
        try_number=int(getattr(ti, "try_number", 1) or 1),
        window_start=window[0],
        window_end=window[1],
    )
    run = OperationRun(
        operation=operation,
        cfg=cfg,
        account=account,
        record=record,
        run_id=run_id,
        dag_id=ti.dag_id,
        window=window,
        params=dict(ctx.get("params") or {}),
    )
    outcome, message = "success", None
    try:
        yield run
    except AirflowSkipException as exc:
        outcome, message = "skipped", str(exc)
        raise
    except PermanentError as exc:
        # Waiting cannot fix it: fail now, without retries, keeping the typed cause for the alert.
        outcome, message = "failed", f"{type(exc).__name__}: {exc}"
        raise AirflowFailException(str(exc)) from exc
    except AirflowNotFoundException as exc:
        # A connection id the settings name does not exist: a person must create it, retries cannot.
        outcome, message = "failed", f"{type(exc).__name__}: {exc}"
        raise AirflowFailException(str(exc)) from exc
    except Exception as exc:
        outcome, message = "failed", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        log.info("%s", _summary(run, outcome, message))
        try:  # an unusable warehouse must not replace the run's own error (nor its no-retry verdict)
            wh = run.warehouse() if "warehouse" in run.targets else None
            if wh is not None:
                record_run(wh, record, outcome, message)
        except Exception:
            log.exception("Could not write the usdirect_runs row for %s (the run's outcome stands)", run_id)

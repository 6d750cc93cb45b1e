"""The frame every task body runs in: settings, data window, staging, audit row and summary.

Operators stay thin: they open ``operation_run`` and call a plain pipeline function. The audit row
is written on success, skip and failure alike, so ``usdirect_runs`` tells the whole story.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from usdirect.domain import metrics
from usdirect.domain.errors import PermanentError
from usdirect.settings.config import Account, Config, ConfigError, load_config, operation_config

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from usdirect.targets.warehouse.audit import RunRecord
    from usdirect.targets.warehouse.sql import Warehouse

log = logging.getLogger(__name__)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
BACKFILL = "backfill"  # DagRunType.BACKFILL_JOB: the one run type that keeps its exact data interval

RunSource = str | Mapping[str, Any]
"""Where a run's settings come from: an account id of the settings file, or the keyword arguments
of ``usdirect.settings.config.operation_config`` (an operator used without the settings file)."""


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
    run_type: str = ""  # the DAG run's type: scheduled, manual, backfill, asset_triggered ...
    gap: dt.timedelta | None = None  # unread time before this run's window, set by incremental_window
    exact_window: bool = False  # the window was given (an operator's window_start/_end): owned as is
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
            from usdirect.targets.warehouse.sql import Warehouse

            self._warehouse = Warehouse.from_conn_id(
                self.account.warehouse_conn_id, schema=self.cfg.warehouse_schema(self.account)
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
        """The window an incremental operation covers, recorded on the run's audit row.

        A backfill run owns exactly its data interval, as does a run given its window explicitly
        (``exact_window``). Every other run (scheduled, manual — also
        ``airflow dags test`` — or asset-triggered) starts where the DAG's targets last took a
        window (``usdirect_watermarks``) when that is earlier than its data interval, so a pause or
        an outage is read in full; without a data interval it ends at the current time, and without
        any watermark it covers ``lookback``. ``self.gap`` is how long went unread before the run.
        """
        start, end = self.window
        has_interval = start is not None and end is not None and start < end
        if has_interval and (self.run_type == BACKFILL or self.exact_window):
            assert start is not None and end is not None
            self.record.window_start, self.record.window_end = start, end
            return start, end
        if not has_interval:
            end = end or dt.datetime.now(dt.UTC)
        assert end is not None
        mark = self._watermark()
        nominal = start if has_interval and start is not None else end
        if mark is not None and mark < nominal:
            self.gap = nominal - mark
            start = mark
        elif not has_interval:
            start = end - lookback if mark is None or mark >= end else mark
        assert start is not None
        self.record.window_start, self.record.window_end = start, end
        if self.gap:
            self.record.counts["gap_hours"] = round(self.gap.total_seconds() / 3600, 1)
        return start, end

    def state_warehouse(self) -> Warehouse:
        """The account's warehouse connection, also when 'warehouse' is not a target: it keeps the
        state every account needs (watermarks, feed state, publish ledger)."""
        from usdirect.targets.warehouse.sql import Warehouse

        return self.warehouse() or Warehouse.from_conn_id(
            self.account.warehouse_conn_id, schema=self.cfg.warehouse_schema(self.account)
        )

    def _watermark(self) -> dt.datetime | None:
        """Where the DAG's targets stopped; older deployments: the last successful window in usdirect_runs."""
        from usdirect.targets.warehouse.watermarks import read_watermark

        mark = read_watermark(self.state_warehouse(), self.dag_id, self.targets)
        return mark if mark is not None else self._last_successful_window_end()

    def record_window(self, target: str, fetched: Mapping[str, Any]) -> None:
        """After ``target`` took the window the fetch task read (its XCom ``window_start``/``_end``)."""
        from usdirect.targets.warehouse.watermarks import advance_watermark

        if not fetched.get("window_start") or not fetched.get("window_end"):
            # A fetch from before watermarks existed (a run resumed across an upgrade): the next
            # run starts from the previous watermark and reads this window again.
            log.warning("The fetch task handed on no window; the %s watermark stays where it was", target)
            return
        window = (
            dt.datetime.fromisoformat(fetched["window_start"]),
            dt.datetime.fromisoformat(fetched["window_end"]),
        )
        advance_watermark(self.state_warehouse(), self.dag_id, target, window, self.run_id)

    def alert_if_long_gap(self) -> None:
        """A needs-attention alert when the run had to read more than ``max_gap_hours`` unread time."""
        limit = dt.timedelta(hours=self.settings.max_gap_hours)
        if self.gap is None or self.gap <= limit:
            return
        from usdirect.notifications.notifier import alert_needs_attention

        hours = self.gap.total_seconds() / 3600
        alert_needs_attention(
            self,
            "window_gap",
            f"nothing was read for {hours:.1f} hours ({hours / 24:.1f} days) before this run, more than "
            f"max_gap_hours ({self.settings.max_gap_hours}); the run read the whole gap from "
            f"{self.record.window_start.isoformat() if self.record.window_start else '?'}",
            {
                "gap_hours": f"{hours:.1f}",
                "window_start": self.record.window_start,
                "window_end": self.record.window_end,
            },
        )

    def _last_successful_window_end(self) -> dt.datetime | None:
        wh = self.warehouse()
        if wh is None:
            return None
        from usdirect.targets.warehouse.audit import ensure_audit_tables

        with wh.connect() as conn:
            ensure_audit_tables(wh, conn)
            rows = wh.fetchall(
                conn,
                f"SELECT max(window_end) FROM {wh.table('usdirect_runs')} "
                f"WHERE dag_id = {wh.placeholder} AND outcome = 'success'",
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


def _send_metrics(run: OperationRun, outcome: str, elapsed: dt.timedelta) -> None:
    """The audit record's counts as counters (README "Metrics"), and how long the task took."""
    rec = run.record
    for name, value in (
        (metrics.ROWS_READ, rec.rows_in),
        (metrics.ROWS_WRITTEN, rec.rows_out),
        (metrics.ROWS_REJECTED, rec.rows_rejected),
        (metrics.ROWS_CHANGED, rec.rows_changed),
    ):
        if value is not None:  # not counted by this step
            metrics.incr(metrics.task_metric(run.operation, rec.task_id, name), value)
    duration = metrics.task_metric(run.operation, rec.task_id, metrics.DURATION)
    metrics.timing(duration, elapsed, outcome=outcome)


def _run_type(ctx: Mapping[str, Any]) -> str:
    """The DAG run's type as its plain value (``DagRunType`` or a string, depending on the caller)."""
    run_type = getattr(ctx.get("dag_run"), "run_type", None)
    return str(getattr(run_type, "value", run_type) or "")


def _apply_memory_caps(cfg: Config) -> None:
    from usdirect.engine.base import MemoryCaps, configure

    m = cfg.memory
    configure(MemoryCaps(engine=m.engine_limit, warehouse=m.warehouse_limit, temp_directory=m.temp_directory))


def _explained(exc: Exception) -> Exception | None:
    """A DuckDB out-of-memory error rewritten to name the cap and the setting (see inventory_engine)."""
    import duckdb

    from usdirect.engine.base import explain_memory_error

    if not isinstance(exc, duckdb.Error | MemoryError):
        return None
    explained = explain_memory_error(exc)
    if explained is not None:
        explained.__cause__ = exc
    return explained


def _settings(operation: str, source: RunSource) -> tuple[Config, Account]:
    if isinstance(source, str):
        cfg = load_config()
        return cfg, find_account(cfg, source)
    cfg = operation_config(operation=operation, **source)
    return cfg, cfg.accounts[0]


@contextmanager
def operation_run(
    operation: str,
    source: RunSource,
    *,
    params: Mapping[str, Any] | None = None,
    window: tuple[dt.datetime, dt.datetime] | None = None,
) -> Iterator[OperationRun]:
    """Open the run frame for the current Airflow task; records outcome and logs a summary.

    ``params`` override the DAG run's Params of the same name; ``window`` replaces the run's data
    interval and is covered exactly (no watermark catch-up).
    """
    from airflow.sdk import get_current_context
    from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException, AirflowSkipException

    from usdirect.targets.warehouse.audit import RunRecord, record_run

    ctx = get_current_context()
    try:
        cfg, account = _settings(operation, source)
    except PermanentError as exc:  # the settings were broken after the DAG file was parsed
        raise AirflowFailException(str(exc)) from exc
    _apply_memory_caps(cfg)
    ti = ctx["ti"]
    run_id = ctx["run_id"]
    interval = window or (ctx.get("data_interval_start"), ctx.get("data_interval_end"))
    record = RunRecord(
        run_id=run_id,
        dag_id=ti.dag_id,
        task_id=ti.task_id,
        operation=operation,
        account=account.id,
        try_number=int(getattr(ti, "try_number", 1) or 1),
        window_start=interval[0],
        window_end=interval[1],
    )
    run = OperationRun(
        operation=operation,
        cfg=cfg,
        account=account,
        record=record,
        run_id=run_id,
        dag_id=ti.dag_id,
        window=interval,
        params={**(ctx.get("params") or {}), **(params or {})},
        run_type=_run_type(ctx),
        exact_window=window is not None,
    )
    outcome, message = "success", None
    started = time.monotonic()
    tags = {"account": account.id, "dag_id": ti.dag_id, "task_id": ti.task_id}
    try:
        with metrics.task_tags(**tags):
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
        explained = _explained(exc)
        if explained is not None:  # DuckDB hit its memory cap: name the cap and the setting
            outcome, message = "failed", f"{type(explained).__name__}: {explained}"
            raise AirflowFailException(str(explained)) from explained
        outcome, message = "failed", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        log.info("%s", _summary(run, outcome, message))
        try:  # a metrics backend that fails must cost neither the audit row nor the run's own error
            with metrics.task_tags(**tags):
                _send_metrics(run, outcome, dt.timedelta(seconds=time.monotonic() - started))
        except Exception:
            log.exception("Could not send the metrics of %s", run_id)
        try:  # an unusable warehouse must not replace the run's own error (nor its no-retry verdict)
            wh = run.warehouse() if "warehouse" in run.targets else None
            if wh is not None:
                record_run(wh, record, outcome, message)
        except Exception:
            log.exception("Could not write the usdirect_runs row for %s (the run's outcome stands)", run_id)

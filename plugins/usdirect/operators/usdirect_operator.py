"""The public operators' common half: where a run's settings come from, and the run frame.

An operator runs in one of two ways. With ``from_settings=True`` it is one account of the
settings file (``include/usdirect.yaml``), read when the task runs, as in the shipped DAGs.
Otherwise every setting is an argument of its own, with the settings file's defaults, so the
operator works in any DAG of a deployment that has no settings file at all.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator

from usdirect.domain import products as pr
from usdirect.operators.assets import add_asset_events, asset_outlets
from usdirect.operators.base import RunSource, operation_run

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors.base import OperatorLineage
    from airflow.sdk import Context
    from airflow.sdk.definitions.mappedoperator import OperatorPartial

    from usdirect.operators.base import OperationRun

_LIST_SEPARATORS = re.compile(r"[\s,]+")


class UsDirectBaseOperator(BaseOperator):
    """Runs one step of a US Direct operation inside the run frame (audit row, alerts, staging).

    :param account_id: With ``from_settings``, the account of the settings file to run for;
        otherwise the name this operator's state rows (audit, feed state, ledger) are kept under.
    :param from_settings: Take every setting from the settings file's account ``account_id`` when
        the task runs; the setting arguments below must then be left unset.
    :param usdirect_conn_id: The US Direct connection (default ``usdirect_default``). (templated)
    :param warehouse_conn_id: The warehouse connection, DuckDB or Postgres (default
        ``usdirect_warehouse``); it also keeps run state when the warehouse is no target. (templated)
    :param warehouse_schema: The schema of the warehouse tables (default: the connection's).
    :param flxpoint_conn_id: The platform connection (default ``flxpoint_default``). (templated)
    :param targets: Where results go: ``warehouse``, ``platform`` or both (default warehouse).
    :param template: The mapping template file; a relative path is read from the DAG file's
        folder. Required unless ``from_settings``. (templated)
    :param staging_url: Folder or object-store URL the run's files pass through (default
        ``$AIRFLOW_HOME/usdirect-staging``). (templated)
    :param staging_conn_id: The object-store connection of ``staging_url``.
    :param engine_memory_limit: DuckDB memory cap of the inventory engine (default 400MB).
    :param warehouse_memory_limit: Default memory cap of a DuckDB warehouse (default 400MB).
    :param spill_directory: Where DuckDB spills past its cap (default: the system temp folder).
    :param operation_settings: For subclasses: the operation's own settings by their settings-file
        names (unset ones are None).
    """

    operation: ClassVar[str]
    # What the step writes and reads: its Assets and lineage are derived from it.
    products: ClassVar[pr.Products] = pr.NONE
    _lineage_run: OperationRun | None = None  # the run frame of the last execute, for lineage
    template_fields: Sequence[str] = (
        "account_id",
        "usdirect_conn_id",
        "warehouse_conn_id",
        "flxpoint_conn_id",
        "template",
        "staging_url",
    )

    def __init__(
        self,
        *,
        account_id: str = "default",
        from_settings: bool = False,
        usdirect_conn_id: str | None = None,
        warehouse_conn_id: str | None = None,
        warehouse_schema: str | None = None,
        flxpoint_conn_id: str | None = None,
        targets: Sequence[str] | None = None,
        template: str | None = None,
        staging_url: str | None = None,
        staging_conn_id: str | None = None,
        engine_memory_limit: str | None = None,
        warehouse_memory_limit: str | None = None,
        spill_directory: str | None = None,
        operation_settings: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if "outlets" not in kwargs:  # the step's Asset alias (see usdirect.operators.assets)
            kwargs["outlets"] = asset_outlets(self.products, account_id, self.operation)
        super().__init__(**kwargs)
        self.account_id = account_id
        self.from_settings = from_settings
        self.usdirect_conn_id = usdirect_conn_id
        self.warehouse_conn_id = warehouse_conn_id
        self.warehouse_schema = warehouse_schema
        self.flxpoint_conn_id = flxpoint_conn_id
        self.targets = tuple(targets) if targets is not None else None
        self.template = template
        self.staging_url = staging_url
        self.staging_conn_id = staging_conn_id
        self.engine_memory_limit = engine_memory_limit
        self.warehouse_memory_limit = warehouse_memory_limit
        self.spill_directory = spill_directory
        self.operation_settings = dict(operation_settings or {})
        given = sorted(k for k, v in self._setting_arguments().items() if v is not None)
        if from_settings and given:
            raise ValueError(
                f"{self.task_id}: {', '.join(given)} come(s) from the settings file with from_settings=True; "
                "leave them unset, or drop from_settings and give every setting as an argument"
            )
        if not from_settings and not template:
            raise ValueError(
                f"{self.task_id}: give the mapping template (template=...) or from_settings=True"
            )

    @classmethod
    def partial(cls, **kwargs: Any) -> OperatorPartial:
        """A mapped step gets its Asset alias too: its ``__init__`` runs only when the task runs."""
        if "outlets" not in kwargs:
            kwargs["outlets"] = asset_outlets(
                cls.products, kwargs.get("account_id", "default"), cls.operation
            )
        return super().partial(**kwargs)

    def _setting_arguments(self) -> dict[str, Any]:
        return {
            "usdirect_conn_id": self.usdirect_conn_id,
            "warehouse_conn_id": self.warehouse_conn_id,
            "warehouse_schema": self.warehouse_schema,
            "flxpoint_conn_id": self.flxpoint_conn_id,
            "targets": self.targets,
            "template": self.template,
            "staging_url": self.staging_url,
            "staging_conn_id": self.staging_conn_id,
            "engine_memory_limit": self.engine_memory_limit,
            "warehouse_memory_limit": self.warehouse_memory_limit,
            "spill_directory": self.spill_directory,
            **self.operation_settings,
        }

    def run_source(self) -> RunSource:
        """The settings file's account id, or this operator's arguments as settings."""
        if self.from_settings:
            return self.account_id
        account = {
            "id": self.account_id,
            "usdirect_conn_id": self.usdirect_conn_id,
            "warehouse_conn_id": self.warehouse_conn_id,
            "warehouse_schema": self.warehouse_schema,
            "flxpoint_conn_id": self.flxpoint_conn_id,
            "targets": self.targets,
        }
        settings = {"template": self.template, **self.operation_settings}
        staging = {"url": self.staging_url, "conn_id": self.staging_conn_id}
        memory = {
            "engine_limit": self.engine_memory_limit,
            "warehouse_limit": self.warehouse_memory_limit,
            "temp_directory": self.spill_directory,
        }
        dag_file = getattr(self.get_dag(), "fileloc", None)
        return {
            "path": Path(dag_file) if dag_file else Path.cwd() / "dag.py",
            "account": _given(account),
            "settings": {"schedule": None, **_given(settings)},  # the operator's DAG schedules it
            "staging": _given(staging),
            "memory": _given(memory),
        }

    def run_inputs(self) -> dict[str, Any]:
        """Run inputs given as arguments; they override the DAG run's Params of the same name."""
        return {}

    def run_window(self) -> tuple[dt.datetime, dt.datetime] | None:
        """An explicit window to cover exactly, instead of the run's data interval."""
        return None

    def execute(self, context: Context) -> Any:
        with operation_run(
            self.operation, self.run_source(), params=self.run_inputs(), window=self.run_window()
        ) as run:
            self._lineage_run = run
            result = self.execute_run(run)
            add_asset_events(
                context, self.outlets, self.products, run, self.changed_rows(run), self.event_window(run)
            )
            return result

    def execute_run(self, run: OperationRun) -> Any:
        """The step's work, inside the run frame."""
        raise NotImplementedError

    def changed_rows(self, run: OperationRun) -> int:
        """Rows the step changed in its products: a step that changed none emits no Asset event."""
        return run.record.rows_changed or 0

    def event_window(self, run: OperationRun) -> tuple[Any, Any]:
        """The window its Asset events report: the run's (an upstream fetch's, in target steps)."""
        return run.record.window_start, run.record.window_end

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage[Any, Any] | None:
        """What the step read and wrote, for the OpenLineage provider when it is installed (the
        ``lineage`` extra); see ``usdirect.operators.lineage``. None when the step failed before
        its run frame opened: there is nothing to tell."""
        from usdirect.operators.lineage import operator_lineage

        run = self._lineage_run
        return None if run is None else operator_lineage(self.products, run, self.changed_rows(run))


def _given(values: Mapping[str, Any]) -> dict[str, Any]:
    """The values that were given: the settings model supplies the defaults of the rest."""
    return {k: v for k, v in values.items() if v is not None}


def po_list(value: Any) -> list[str] | None:
    """PO numbers as a list, from a list, a JSON or comma list string (a rendered template), or the
    rows of a SQL query (one column each, as ``SQLExecuteQueryOperator`` returns them)."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return po_list(json.loads(text))
        return [v for v in _LIST_SEPARATORS.split(text) if v]
    out: list[str] = []
    for item in value:
        if isinstance(item, list | tuple):
            if len(item) != 1:
                raise ValueError(f"po_numbers: expected one column per row, got {item!r}")
            item = item[0]
        out.append(str(item))
    return out


def utc_time(value: Any) -> dt.datetime:
    """A window bound from a datetime or an ISO 8601 string (a rendered template); naive = UTC."""
    moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value).strip())
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)

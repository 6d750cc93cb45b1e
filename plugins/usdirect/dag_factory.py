"""Builds one DAG per configured US Direct account for an operation.

DAG files call ``build_dags`` and nothing else, so parsing stays fast (no pandas, pyarrow or httpx:
task bodies import those when they run) and every DAG gets the same schedule, retry, concurrency
and alerting conventions from ``include/usdirect.yaml``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from airflow.sdk import DAG, CronDataIntervalTimetable, Param
from airflow.sdk.definitions.param import ParamsDict

from usdirect.domain.operations import SPECS, OperationSpec
from usdirect.notifications.notifier import UsDirectFailureNotifier
from usdirect.operators.broken_template import check_template
from usdirect.settings.config import Account, Config, load_config
from usdirect.settings.template_check import template_problems

log = logging.getLogger(__name__)

START_DATE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

Define = Callable[[Config, Account], None]

# Airflow validates every Param of every task about a dozen times per parse (DAG init,
# serialization), each time checking the schema itself against its metaschema first: against
# draft 2020-12 (the default) that check dominated parsing 200 accounts; against draft-04 it costs
# a fifth. Our Params use only type, items and minimum, which mean the same in both drafts.
PARAM_DRAFT = "http://json-schema.org/draft-04/schema#"


def _params(spec: OperationSpec) -> dict[str, Param]:
    """The operation's Params, each declaring the draft-04 metaschema (see ``PARAM_DRAFT``)."""
    return {
        p.name: Param(p.default, p.description, schema={"$schema": PARAM_DRAFT, **p.schema})
        for p in spec.params
    }


def _schedule(spec: OperationSpec, cron: str | None) -> object:
    """Windowed operations own [data_interval_start, end): scheduled runs and backfills cover every
    window exactly once (the settings refuse @once there)."""
    if cron is None:
        return None
    if spec.windowed:
        return CronDataIntervalTimetable(cron, timezone="UTC")
    return cron


def build_dags(operation: str, define: Define) -> dict[str, DAG]:
    """Create the operation's DAG for every account; ``define`` adds the tasks inside the DAG."""
    cfg = load_config()
    # A broken template is an import error now, not a failed task later, when every account of the
    # file uses it; when only some do, those accounts alone get a DAG that fails at once with it.
    problems = template_problems(cfg, operation)
    if len(problems) == len(cfg.accounts):
        raise next(iter(problems.values()))
    op = cfg.operations[operation]
    spec = SPECS[operation]
    dags: dict[str, DAG] = {}
    for account in cfg.accounts:
        dag_id = cfg.dag_id(account, operation)
        problem = problems.get(account.id)
        if problem is not None:
            log.error("DAG %s runs no tasks until its template is fixed: %s", dag_id, problem)
        default_args: dict[str, object] = {
            "retries": cfg.tasks.retries,
            "retry_delay": dt.timedelta(seconds=cfg.tasks.retry_delay_seconds),
            "retry_exponential_backoff": True,
            # Caps the account's concurrent API-calling tasks; a task that calls no API may set
            # pool="default_pool". The pool must exist (`airflow pools set usdirect_<id> N ...`).
            "pool": cfg.pool(account),
        }
        if cfg.alerts.on_failure and cfg.alerts.channels:
            default_args["on_failure_callback"] = [
                UsDirectFailureNotifier(account.id, operation, cfg.alerts.channels)
            ]
        doc_md = (
            f"**{dag_id}** — {spec.doc}\n\nAccount `{account.id}`, "
            f"connection `{account.usdirect_conn_id}`, targets {', '.join(cfg.targets(account))}."
        )
        with DAG(
            dag_id=dag_id,
            schedule=_schedule(spec, op.schedule),
            start_date=START_DATE,
            catchup=False,
            max_active_runs=1,
            tags=["usdirect", operation, f"account:{account.id}", *(["template-broken"] if problem else [])],
            params=_params(spec),
            default_args=default_args,
            doc_md=doc_md if problem is None else f"{doc_md}\n\n**Template broken:**\n\n```\n{problem}\n```",
            dag_display_name=dag_id if problem is None else f"{dag_id} (template broken)",
            description=None if problem is None else str(problem).splitlines()[0][:200],
        ) as dag:
            if problem is None:
                define(cfg, account)
            else:
                check_template(operation, account.id)
        _drop_task_param_copies(dag)
        dags[dag_id] = dag
    return dags


def _drop_task_param_copies(dag: DAG) -> None:
    """Leave the Params on the DAG alone: Airflow copies them into every task, and its serializer
    validates each task's copy twice (a third of parsing 200 accounts); the task runner merges the
    DAG's Params into the task's when it runs (``process_params``), so the copies add nothing."""
    for task in dag.task_dict.values():
        task.params = ParamsDict()

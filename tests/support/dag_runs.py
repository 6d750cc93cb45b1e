"""Run a DAG through ``dag.test()`` as a scheduled or backfill run of a given data interval.

``dag.test()`` (and ``airflow dags test``, which calls it) always creates a *manual* run. The
scheduler and ``airflow backfill create`` are not started in these tests, so the run they would
create is made here instead: same DAG, same interval, the run type they give it. Everything after
the run's creation (task execution, context, XCom) is Airflow's own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock


@contextmanager
def _created_as(run_type: str, interval: tuple[dt.datetime, dt.datetime]) -> Iterator[None]:
    from airflow.models.dagrun import DagRun
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunType
    from sqlalchemy import select

    kind = DagRunType(run_type)

    def create(*, dag: Any, session: Any, triggered_by: Any, conf: Any, **_: Any) -> DagRun:
        start, end = interval
        old = session.scalar(select(DagRun).where(DagRun.dag_id == dag.dag_id, DagRun.logical_date == start))
        if old:
            session.delete(old)
            session.commit()
        return dag.create_dagrun(
            run_id=DagRun.generate_run_id(run_type=kind, logical_date=start, run_after=end),
            logical_date=start,
            data_interval=(start, end),
            run_after=end,
            conf=conf,
            run_type=kind,
            state=DagRunState.RUNNING,
            triggered_by=triggered_by,
            triggering_user_name="tests",
            start_date=end,
            session=session,
        )

    with mock.patch("airflow.models.dagrun.get_or_create_dagrun", create):
        yield


def run_as(dag: Any, run_type: str, interval: tuple[dt.datetime, dt.datetime]) -> Any:
    """``dag.test()`` as a ``scheduled`` or ``backfill`` run owning ``interval``; returns the DagRun."""
    with _created_as(run_type, interval):
        run = dag.test(logical_date=interval[0])
    assert str(run.run_type) == run_type, run.run_type
    return run

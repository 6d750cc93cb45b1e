"""The package's counters and timers, named here once, sent through Airflow's ``Stats``.

``Stats`` goes wherever the deployment sends Airflow's own metrics (``[metrics] statsd_on``,
``statsd_datadog_enabled`` or ``otel_on``) and does nothing when none is configured, so the package
needs no metrics settings of its own. The names follow Airflow's (dotted, ``[metrics]
statsd_prefix`` in front); the account, DAG and task are tags, which reach backends that carry
tags (DogStatsD, OpenTelemetry, StatsD with ``statsd_influxdb_enabled``). README "Metrics" lists them.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from contextlib import contextmanager

PREFIX = "usdirect"

# Per task, from the run frame's audit record: usdirect.<operation>.<task_id>.<name>
ROWS_READ = "rows_read"
ROWS_WRITTEN = "rows_written"
ROWS_REJECTED = "rows_rejected"
ROWS_CHANGED = "rows_changed"
DURATION = "duration"  # timer (ms), tag outcome: success, skipped or failed

# Per HTTP call of a service (usdirect, flxpoint): usdirect.http.<service>.<name>
HTTP_RETRIES = "retries"  # attempts repeated after a 429, a 5xx or a transport error
HTTP_THROTTLED = "throttled"  # HTTP 429 answers

ORDERS_SUBMITTED = f"{PREFIX}.orders.submitted"
ORDERS_NEEDS_ATTENTION = f"{PREFIX}.orders.needs_attention"
PUBLISH_CALLS = f"{PREFIX}.platform.publish_calls"  # tag kind: put (update/archive) or post (create)

_task_tags: dict[str, str] = {}


def task_metric(operation: str, task_id: str, name: str) -> str:
    """``usdirect.get_inventory.map_inventory.rows_read``; a task group's dot becomes ``__``, as in
    Airflow's own names, so the name keeps its levels."""
    return f"{PREFIX}.{operation}.{task_id.replace('.', '__')}.{name}"


def http_metric(service: str, name: str) -> str:
    """``usdirect.http.usdirect.retries`` for the service "US Direct"."""
    return f"{PREFIX}.http.{re.sub(r'[^a-z0-9]', '', service.lower())}.{name}"


@contextmanager
def task_tags(**tags: str) -> Iterator[None]:
    """Tags every metric of the current task carries (its account, DAG and task ids).

    Process-wide rather than a context variable: a task runs in a process of its own, and its
    metrics are also sent from worker threads (order sending, HTTP retries).
    """
    before = dict(_task_tags)
    _task_tags.update(tags)
    try:
        yield
    finally:
        _task_tags.clear()
        _task_tags.update(before)


def incr(name: str, count: int = 1, **tags: str) -> None:
    from airflow.sdk.observability.stats import Stats

    Stats.incr(name, count, tags={**_task_tags, **tags})


def timing(name: str, elapsed: dt.timedelta, **tags: str) -> None:
    from airflow.sdk.observability.stats import Stats

    Stats.timing(name, elapsed, tags={**_task_tags, **tags})

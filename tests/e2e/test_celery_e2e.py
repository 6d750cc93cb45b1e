"""End to end on Airflow's CeleryExecutor: two Celery workers as separate processes, Redis as the
broker, Postgres as metadata DB and result backend, run-scoped staging on S3 (moto's server) and
one rate limit per API Token shared through Redis.

The assertions are the LocalExecutor e2e's (tests/e2e/test_airflow_e2e.py), now across workers:
the five DAGs green (run side by side), a 3-day shipments backfill that covers each window once,
and an injected credential failure that reaches the alert webhook. The task instances' hostnames
and pids show that both workers did the work.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e import test_airflow_e2e as local_e2e
from tests.e2e.test_airflow_e2e import OPERATION_DAGS, assert_operation_succeeded, operation_conf
from tests.inventory import test_s3_staging as s3_staging
from tests.support.airflow_stack import AirflowStack, require_dag_file, running_airflow, settle
from tests.support.paths import REPO
from tests.support.postgres import temporary_database
from usdirect.operators.base import _UNSAFE  # how a run id becomes its staging folder

pytestmark = pytest.mark.e2e

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
BROKER_DB = 12  # the Celery broker's queues (database 11 is the rate-limit tests')
PACING_DB = 13  # the hooks' shared schedule per API Token (settings rate_limit.backend: redis)
WORKERS = ("celery-worker-a", "celery-worker-b")
# Two task slots each; no log server (both share this machine's AIRFLOW_HOME, logs are files there).
WORKER_ARGS = ("--concurrency", "2", "--skip-serve-logs")
STAGING_CONN = "usdirect_s3_staging"
PACING_CONN = "usdirect_pacing_redis"
READY = re.compile(rb"@\S+ ready\.")
BUCKET, KEYS = s3_staging.BUCKET, s3_staging.KEYS
s3_endpoint = s3_staging.s3_endpoint  # moto's S3 server for the module (the S3 staging tests' fixture)


@pytest.fixture(scope="module")
def redis_broker() -> Iterator[str]:
    """The broker URL (Redis database 12); databases 12 and 13 are flushed before and after."""
    redis = pytest.importorskip("redis")
    clients = [
        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db, socket_connect_timeout=2, socket_timeout=5)
        for db in (BROKER_DB, PACING_DB)
    ]
    try:
        clients[0].ping()
    except redis.ConnectionError as exc:
        pytest.skip(
            f"Redis at {REDIS_HOST}:{REDIS_PORT} does not answer ({exc}): the CeleryExecutor e2e uses it "
            f"as broker (database {BROKER_DB}) and for shared pacing (database {PACING_DB}); start it "
            f"with redis-server --port {REDIS_PORT}"
        )
    for client in clients:
        client.flushdb()  # no queued task of an aborted earlier session may reach these workers
    yield f"redis://{REDIS_HOST}:{REDIS_PORT}/{BROKER_DB}"
    for client in clients:
        client.flushdb()
        client.close()


@pytest.fixture(scope="module")
def pacing_db(redis_broker: str) -> Iterator[Any]:
    """A client of the Redis database the workers' hooks pace API Tokens in."""
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=PACING_DB, socket_timeout=5)
    yield client
    client.close()


def pacing_keys(client: Any, timeout: float = 180) -> list[bytes]:
    """The per-token schedules in Redis, once the first API call of a task has made one.

    They expire a minute after their last use, so they are looked for while the runs are going.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        keys = client.keys("usdirect:ratelimit:*")
        if keys:
            return keys
        time.sleep(0.5)
    return []


def _staging_bucket(endpoint: str) -> Any:
    """A boto3 client on the moto server, with the (empty) staging bucket created."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=KEYS["login"],
        aws_secret_access_key=KEYS["password"],
    )
    client.create_bucket(Bucket=BUCKET)
    return client


def _wait_workers_ready(stack: AirflowStack, timeout: float = 120) -> None:
    """Both workers connected to the broker (Celery logs "<name>@<host> ready.")."""
    deadline = time.monotonic() + timeout
    waiting = list(WORKERS)
    while waiting and time.monotonic() < deadline:
        for name in list(waiting):
            if stack.procs[name].poll() is not None:
                raise RuntimeError(f"Celery worker {name} exited\n{stack.tail_logs()}")
            if READY.search((stack.home / f"{name}.log").read_bytes()):
                waiting.remove(name)
        time.sleep(1)
    if waiting:
        raise RuntimeError(f"Celery workers {waiting} not ready after {timeout}s\n{stack.tail_logs()}")


@pytest.fixture(scope="module")
def airflow_stack(
    tmp_path_factory: pytest.TempPathFactory, redis_broker: str, s3_endpoint: str
) -> Iterator[AirflowStack]:
    """Scheduler, DAG processor, API server, triggerer and two Celery workers on one metadata DB.

    Overrides the session's LocalExecutor stack for this module, so the reused tests run here.
    """
    s3 = _staging_bucket(s3_endpoint)
    celery_env = {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": redis_broker,
    }
    settings = {
        "staging": {"url": f"s3://{BUCKET}/usdirect", "conn_id": STAGING_CONN},
        "rate_limit": {"backend": "redis", "redis_conn_id": PACING_CONN},
    }
    connections = {
        STAGING_CONN: {
            "conn_type": "aws",
            **KEYS,
            "extra": {"endpoint_url": s3_endpoint, "region_name": "us-east-1"},
        },
        PACING_CONN: {
            "conn_type": "redis",
            "host": REDIS_HOST,
            "port": REDIS_PORT,
            "extra": {"db": PACING_DB},
        },
    }
    pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    workers = {
        name: (
            ["celery", "worker", "--celery-hostname", f"{name}@%h", *WORKER_ARGS],
            {
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.e2e.celery_worker.hostname",
                "USDIRECT_E2E_WORKER": name,
                "PYTHONPATH": pythonpath,
            },
        )
        for name in WORKERS
    }
    with temporary_database("usdirect_e2e_celery_meta") as dsn:
        metadata_db = dsn.replace("postgresql://", "postgresql+psycopg://", 1)
        celery_env["AIRFLOW__CELERY__RESULT_BACKEND"] = f"db+{metadata_db}"
        home = tmp_path_factory.mktemp("e2e-celery-home")
        with running_airflow(home, metadata_db, celery_env, settings, connections, workers) as stack:
            _wait_workers_ready(stack)
            stack.s3 = s3  # type: ignore[attr-defined]
            yield stack


def task_instances(stack: AirflowStack, dag_id: str, run_id: str) -> list[dict]:
    return stack.api("GET", f"dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]


def staged_objects(stack: AirflowStack, prefix: str) -> dict[str, int]:
    pages = stack.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)  # type: ignore[attr-defined]
    return {o["Key"]: o["Size"] for page in pages for o in page.get("Contents", [])}


def test_five_dags_run_green_side_by_side_on_both_workers(
    airflow_stack: AirflowStack, pacing_db: Any
) -> None:
    stack = airflow_stack
    for dag_id in OPERATION_DAGS:
        require_dag_file(dag_id)
    confs = {dag_id: operation_conf(stack, dag_id) for dag_id in OPERATION_DAGS}  # before any task runs
    runs = {dag_id: stack.trigger(dag_id, confs[dag_id]) for dag_id in OPERATION_DAGS}
    # The workers pace each API Token through Redis (rate_limit.backend: redis), not per process.
    keys = pacing_keys(pacing_db)
    assert keys and all(k.startswith(b"usdirect:ratelimit:{") for k in keys), (keys, stack.tail_logs())
    assert not any(stack.sandbox.api_token.encode() in k for k in keys), "an API Token reached Redis"
    states = {dag_id: stack.wait_run(dag_id, run_id, timeout=420) for dag_id, run_id in runs.items()}
    for dag_id in OPERATION_DAGS:
        settle(stack, dag_id)
    tis = {dag_id: task_instances(stack, dag_id, run_id) for dag_id, run_id in runs.items()}
    for dag_id, run_id in runs.items():
        tasks = {ti["task_id"]: ti["state"] for ti in tis[dag_id]}
        assert_operation_succeeded(stack, dag_id, run_id, states[dag_id], tasks)
    stack.sandbox.advance_clock(days=4)  # ship (inside the backfill windows) and invoice

    # Every task of these runs and of the scheduled runs the unpause started ran on one of the two
    # workers, and both did work: hostnames (the workers' own names, see celery_worker.py) and task
    # process ids, which no two tasks share.
    done = {
        (dag_id, run["dag_run_id"]): [
            ti for ti in task_instances(stack, dag_id, run["dag_run_id"]) if ti["state"] == "success"
        ]
        for dag_id in OPERATION_DAGS
        for run in stack.runs(dag_id)
    }
    where = {key: [(ti["task_id"], ti["hostname"], ti["pid"]) for ti in tis] for key, tis in done.items()}
    by_worker: dict[str, set[int]] = {}
    for ti in (ti for tis in done.values() for ti in tis):
        by_worker.setdefault(ti["hostname"], set()).add(ti["pid"])
    assert set(by_worker) == set(WORKERS), where
    assert all(None not in pids for pids in by_worker.values()), where
    assert len({pid for pids in by_worker.values() for pid in pids}) == sum(map(len, done.values())), where

    # Runs whose tasks ran on both workers handed their files over through the bucket (the DAGs'
    # tasks pass data only through staging), never a worker's disk.
    crossed = [key for key, tis in done.items() if len({ti["hostname"] for ti in tis}) == 2]
    assert crossed, where
    for dag_id, run_id in crossed:
        staged = staged_objects(stack, f"usdirect/{dag_id}/{_UNSAFE.sub('_', run_id)}/")
        assert staged, (dag_id, run_id, where[dag_id, run_id])
    assert staged_objects(stack, "usdirect/usdirect_get_inventory/")
    assert not (stack.home / "usdirect-staging").exists()


# The LocalExecutor e2e's backfill and alert tests, run here against the Celery deployment (this
# module's airflow_stack). Bound after the test above, so they run after it, as they do there.
broken_api_token = local_e2e.broken_api_token
test_get_shipments_backfill_covers_each_window_once_and_rerun_changes_nothing = (
    local_e2e.test_get_shipments_backfill_covers_each_window_once_and_rerun_changes_nothing
)
test_operation_dag_broken_credential_alerts_the_webhook = (
    local_e2e.test_operation_dag_broken_credential_alerts_the_webhook
)

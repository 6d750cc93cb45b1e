"""The full-feed DAG with its run-scoped staging on S3: moto's server on 127.0.0.1 stands in for the
object store, reached the way a cluster reaches S3 — ``ObjectStoragePath`` with an Airflow ``aws``
connection (credentials and endpoint), resolved by the Amazon provider's s3 filesystem."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from tests.support.connections import conn_env_var
from tests.support.inventory import Env, assert_warehouse_matches, inventory

BUCKET = "usdirect-staging"
STAGING_CONN = "usdirect_s3_staging"
KEYS = {"login": "AKIAUSDIRECTTEST", "password": "usdirect-test-secret"}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a free port of 127.0.0.1, for the module's tests."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(s3_endpoint: str) -> Any:
    """A boto3 client on the moto server with an empty staging bucket."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id=KEYS["login"],
        aws_secret_access_key=KEYS["password"],
    )
    # moto keeps every server's buckets in one store per process: start each test from none, so
    # files staged by an earlier module (the Celery e2e stages on S3 too) are not counted here.
    httpx.post(f"{s3_endpoint}/moto-api/reset", timeout=30).raise_for_status()
    client.create_bucket(Bucket=BUCKET)
    return client


def _stage_on_s3(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    """Point the test config's staging at the bucket through an ``aws`` connection."""
    monkeypatch.setenv(
        *conn_env_var(
            STAGING_CONN,
            {"conn_type": "aws", **KEYS, "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"}},
        )
    )
    path = Path(os.environ["USDIRECT_CONFIG"])
    raw = yaml.safe_load(path.read_text())
    raw["staging"] = {"url": f"s3://{BUCKET}/usdirect", "conn_id": STAGING_CONN}
    path.write_text(yaml.safe_dump(raw))


def _objects(s3: Any) -> dict[str, int]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    return {o["Key"]: o["Size"] for page in pages for o in page.get("Contents", [])}


def _parquet(s3: Any, key: str) -> pa.Table:
    return pq.read_table(io.BytesIO(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()))


def test_full_feed_stages_through_s3(
    make_env: Callable[..., Env],
    s3: Any,
    s3_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = make_env("duckdb", ["warehouse", "platform"], catalog_size=200, dirty=True)
    _stage_on_s3(monkeypatch, s3_endpoint)

    run = env.run("usdirect_get_inventory")
    assert run.state == "success", env.task_states(run)
    assert_warehouse_matches(env)

    # Every file the tasks handed each other is in the bucket, under the run's own prefix.
    objects = _objects(s3)
    prefixes = {key.rsplit("/", 1)[0] for key in objects}
    assert len(prefixes) == 1, sorted(objects)
    (prefix,) = prefixes
    root, dag_id, run_folder, stage = prefix.split("/")
    assert (root, dag_id, stage) == ("usdirect", "usdirect_get_inventory", "inventory"), prefix
    staged = {key.rsplit("/", 1)[1]: size for key, size in objects.items()}
    assert set(staged) == {"feed.csv", "feed.json", "mapped.parquet", "dropped.parquet", "rejects.parquet"}
    assert all(size > 0 for size in staged.values()), staged

    # The warehouse was loaded from the staged file: same SKUs, and the rejects are the dirty rows.
    mapped = _parquet(s3, f"{prefix}/mapped.parquet")
    assert set(mapped.column("sku").to_pylist()) == set(inventory(env.wh))
    rejects = _parquet(s3, f"{prefix}/rejects.parquet")
    assert rejects.num_rows == len(env.sandbox.catalog_truth()["dirty_rows"]) > 0

    # Nothing went to a local staging folder: neither the default nor the one the config had.
    default = Path(os.environ["AIRFLOW_HOME"]) / "usdirect-staging" / "usdirect_get_inventory" / run_folder
    assert not default.exists()
    assert not (env.tmp / "staging").exists()


def test_unchanged_feed_skips_with_staging_on_s3(
    make_env: Callable[..., Env],
    s3: Any,
    s3_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 304 writes no feed file: the run skips as it does with local staging, uploading nothing
    (found by the CeleryExecutor e2e, where a scheduled run delivered the feed just before)."""
    env = make_env("duckdb", ["warehouse"], catalog_size=50)
    _stage_on_s3(monkeypatch, s3_endpoint)
    assert env.run("usdirect_get_inventory").state == "success"
    staged = _objects(s3)

    again = env.run("usdirect_get_inventory")
    states = env.task_states(again)
    assert again.state == "success" and states["fetch_feed"] == "skipped", states
    assert _objects(s3) == staged


def test_partitioned_feed_stages_its_slices_through_s3(
    make_env: Callable[..., Env],
    s3: Any,
    s3_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each slice file is uploaded by map_feed and read back by its own load and publish task."""
    env = make_env("duckdb", ["warehouse", "platform"], catalog_size=200)
    _stage_on_s3(monkeypatch, s3_endpoint)
    path = Path(os.environ["USDIRECT_CONFIG"])
    raw = yaml.safe_load(path.read_text())
    raw["operations"]["get_inventory"]["partition_rows"] = 70
    path.write_text(yaml.safe_dump(raw))

    run = env.run("usdirect_get_inventory")
    assert run.state == "success", env.task_states(run)
    assert_warehouse_matches(env)
    slices = sorted(key.rsplit("/", 1)[1] for key in _objects(s3) if "/mapped-part-" in key)
    assert slices == [f"mapped-part-{i:04d}-of-0003.parquet" for i in range(3)]
    skus = [
        sku
        for key in _objects(s3)
        if "/mapped-part-" in key
        for sku in _parquet(s3, key).column("sku").to_pylist()
    ]
    assert sorted(skus) == sorted(inventory(env.wh))  # every SKU in exactly one slice
    loads = sorted(
        ti.map_index for ti in run.get_task_instances() if ti.task_id == "load_inventory_warehouse"
    )
    assert loads == [0, 1, 2]

"""OpenLineage: ``airflow dags test`` of Get Inventory with the provider's file transport reports, per
task, the US Direct and platform endpoints it read and the tables and platform records it wrote,
with their schemas and the audit row's counts, and no credential anywhere; without the provider
the same DAG runs unchanged.

Each run is a process of its own: the provider reads its transport from the environment when it
starts, and the provider-less run hides it before anything is imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from sandbox.runner import SandboxInfo
from tests.support.connections import conn_env_var, warehouse_conn
from tests.support.settings_file import write_settings
from usdirect.domain import products as pr
from usdirect.operators.lineage import endpoint_id, table_id
from usdirect.targets.warehouse.sql import Warehouse

DAG = "usdirect_get_inventory"
AIRFLOW_DAGS_TEST = """
import sys
from airflow.__main__ import main
sys.argv = ["airflow", "dags", "test", sys.argv[1]]
main()
"""
# A deployment without the OpenLineage provider and client: they cannot be imported, and their
# distributions (the provider's entry point) are not installed.
WITHOUT_PROVIDER = """
import importlib.abc, importlib.metadata, sys
import importlib_metadata

HIDDEN = ("openlineage", "airflow.providers.openlineage")

class Hidden(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name in HIDDEN or name.startswith(tuple(h + "." for h in HIDDEN)):
            print(f"hidden: {name}", file=sys.stderr)
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

def installed(distributions):
    def visible(**kwargs):
        for dist in distributions(**kwargs):
            name = (dist.metadata["Name"] or "").lower()
            if not name.startswith(("openlineage", "apache-airflow-providers-openlineage")):
                yield dist
    return visible

sys.meta_path.insert(0, Hidden())
for module in (importlib.metadata, importlib_metadata):
    module.distributions = installed(module.distributions)
"""


def _secrets(sb: SandboxInfo) -> dict[str, str]:
    from urllib.parse import parse_qs, urlsplit

    return {
        "API Token": sb.api_token,
        "Reseller Token": sb.reseller_token,
        "platform token": sb.platform_token,
        "Feed URL": sb.feed_url,
        "feed key": parse_qs(urlsplit(sb.feed_url).query)["key"][0],
    }


def _dags_test(env: dict[str, str], prelude: str = "") -> str:
    out = subprocess.run(
        [sys.executable, "-c", prelude + AIRFLOW_DAGS_TEST, DAG],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, f"{DAG} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout + out.stderr


def _environment(
    sb: SandboxInfo, warehouse: dict[str, Any], targets: list[str], tmp_path: Path, schema: str | None
) -> dict[str, str]:
    env = os.environ.copy()
    connections = {**sb.connections(), "usdirect_warehouse": warehouse}
    env.update(dict(conn_env_var(cid, c) for cid, c in connections.items()))
    env["USDIRECT_CONFIG"] = str(write_settings(tmp_path, targets, retries=0, schema=schema))
    return env


def _audit(wh: Warehouse) -> dict[str, dict[str, Any]]:
    """The run's audit rows by task id (one DAG run in a fresh warehouse)."""
    with wh.connect() as conn:
        rows = wh.fetchall(
            conn,
            f"SELECT task_id, rows_in, rows_rejected, rows_changed, counts FROM {wh.table('usdirect_runs')}",
        )
    names = ("rows_in", "rows_rejected", "rows_changed", "counts")
    return {r[0]: dict(zip(names, r[1:], strict=True)) for r in rows}


def _complete_events(path: Path) -> dict[str, dict[str, Any]]:
    """The COMPLETE event of each task, by task id."""
    events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {
        e["job"]["name"].removeprefix(f"{DAG}."): e
        for e in events
        if e["eventType"] == "COMPLETE" and e["job"]["name"].startswith(f"{DAG}.")
    }


def _ids(datasets: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(d["namespace"], d["name"]) for d in datasets]


def _schema(dataset: dict[str, Any]) -> list[str]:
    return [f["name"] for f in dataset["facets"]["schema"]["fields"]]


def _rows_written(dataset: dict[str, Any]) -> int | None:
    return dataset.get("outputFacets", {}).get("outputStatistics", {}).get("rowCount")


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_each_task_reports_its_datasets_counts_and_schemas_and_no_secret(
    kind: str,
    airflow_db: Path,
    sandbox_factory: Any,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sb = sandbox_factory(catalog_size=300, dirty=True)
    events_file = tmp_path / "openlineage.jsonl"
    warehouse = warehouse_conn(kind, request, tmp_path)
    schema = f"ol_{uuid.uuid4().hex[:8]}" if kind == "postgres" else None
    env = _environment(sb, warehouse, ["warehouse", "platform"], tmp_path, schema)
    env["AIRFLOW__OPENLINEAGE__TRANSPORT"] = json.dumps(
        {"type": "file", "log_file_path": str(events_file), "append": True}
    )
    # Every attribute of the operators goes into the events too: none may carry a secret.
    env["AIRFLOW__OPENLINEAGE__EMISSION_POLICY"] = json.dumps(
        [{"scope": {}, "controls": {"include_full_task_info": True}}]
    )
    _dags_test(env)

    monkeypatch.setenv(*conn_env_var("usdirect_warehouse", warehouse))
    audit = _audit(Warehouse.from_conn_id("usdirect_warehouse", schema=schema))
    events = _complete_events(events_file)
    assert set(events) == {
        "fetch_feed",
        "map_feed",
        "load_inventory_warehouse",
        "publish_inventory_platform",
        "record_feed_state",
    }
    usdirect = endpoint_id(sb.usdirect_url)[0]
    platform = endpoint_id(sb.flxpoint_url)[0]
    assert usdirect.startswith("http://127.0.0.1:")
    if kind == "duckdb":
        tables = "duckdb://" + warehouse["host"], "warehouse.main."
    else:
        tables = "postgres://127.0.0.1:5432", f"{warehouse['schema']}.{schema}."

    fetch = events["fetch_feed"]
    assert _ids(fetch["inputs"]) == [(usdirect, "/feeds/inventory.csv")] and fetch["outputs"] == []
    feed_bytes = json.loads(audit["fetch_feed"]["counts"])["bytes"]
    assert fetch["inputs"][0]["inputFacets"]["inputStatistics"]["size"] == feed_bytes > 0

    mapping = events["map_feed"]
    (rejects,) = mapping["outputs"]
    assert (rejects["namespace"], rejects["name"]) == (tables[0], tables[1] + pr.REJECTS)
    assert _schema(rejects) == list(pr.table_record(pr.REJECTS).names)
    assert _rows_written(rejects) == audit["map_feed"]["rows_rejected"] > 0

    load = events["load_inventory_warehouse"]
    assert _ids(load["outputs"]) == [
        (tables[0], tables[1] + pr.INVENTORY),
        (tables[0], tables[1] + pr.INVENTORY_HISTORY),
    ]
    inventory, history = load["outputs"]
    assert _schema(inventory) == list(pr.table_record(pr.INVENTORY).names)
    assert _schema(history) == list(pr.table_record(pr.INVENTORY_HISTORY).names)
    assert _rows_written(inventory) == audit["load_inventory_warehouse"]["rows_changed"] > 0
    assert _rows_written(history) is None  # the audit row counts the step's first table only

    publish = events["publish_inventory_platform"]
    assert _ids(publish["inputs"]) == [(platform, "/inventory/variants")]
    assert _ids(publish["outputs"]) == [(platform, pr.PLATFORM_INVENTORY)]
    assert _rows_written(publish["outputs"][0]) == audit["publish_inventory_platform"]["rows_changed"] > 0

    assert events["record_feed_state"]["inputs"] == events["record_feed_state"]["outputs"] == []

    text = events_file.read_text()
    for name, value in _secrets(sb).items():
        assert value not in text, f"{name} appears in the OpenLineage events"


def test_the_dag_runs_unchanged_without_the_provider(
    airflow_db: Path,
    sandbox_factory: Any,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sb = sandbox_factory(catalog_size=50)
    events_file = tmp_path / "openlineage.jsonl"
    warehouse = warehouse_conn("duckdb", request, tmp_path)
    env = _environment(sb, warehouse, ["warehouse"], tmp_path, None)
    env["AIRFLOW__OPENLINEAGE__TRANSPORT"] = json.dumps(
        {"type": "file", "log_file_path": str(events_file), "append": True}
    )
    _dags_test(env, prelude=WITHOUT_PROVIDER)  # an import of the provider would fail the tasks
    assert not events_file.exists()  # with the provider, the same transport gets the events
    monkeypatch.setenv(*conn_env_var("usdirect_warehouse", warehouse))
    audit = _audit(Warehouse.from_conn_id("usdirect_warehouse"))
    assert audit["load_inventory_warehouse"]["rows_changed"] == 50


@pytest.mark.parametrize(
    ("url", "path", "expected"),
    [
        ("https://api.example.com", "/v1/ping", ("https://api.example.com:443", "/v1/ping")),
        (
            "https://api.example.com/reseller/",
            "/v1/ping",
            ("https://api.example.com:443", "/reseller/v1/ping"),
        ),
        (
            "https://user:pw@feeds.example.com:8443/f/inventory.csv?key=SECRETKEY#x",
            "",
            ("https://feeds.example.com:8443", "/f/inventory.csv"),
        ),
        ("http://127.0.0.1:9000", "", ("http://127.0.0.1:9000", "/")),
    ],
)
def test_an_endpoint_is_named_by_host_and_path_only(url: str, path: str, expected: tuple[str, str]) -> None:
    assert endpoint_id(url, path) == expected


def test_a_table_is_named_by_the_openlineage_convention() -> None:
    from airflow.sdk import Connection

    pg = Connection(conn_id="w", conn_type="postgres", host="db.internal", schema="dw", password="pw")
    assert table_id(pg, None, "t") == ("postgres://db.internal:5432", "dw.public.t")
    duck = Connection(conn_id="w", conn_type="duckdb", host="/data/wh.duckdb")
    assert table_id(duck, "acme", "t") == ("duckdb:///data/wh.duckdb", "wh.acme.t")
    motherduck = Connection(
        conn_id="w", conn_type="duckdb", extra=json.dumps({"database": "md:wh?motherduck_token=TOK"})
    )
    assert "TOK" not in "".join(table_id(motherduck, None, "t"))


def test_api_endpoints_and_warehouse_reads_of_a_step(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Get Shipments' fetch reads two US Direct endpoints (the Reseller API under a base path) and
    the warehouse's fulfillment requests; rows_in goes to its first input."""
    from usdirect.operators.base import OperationRun
    from usdirect.operators.lineage import operator_lineage
    from usdirect.operators.shipments import OPERATION, UsDirectGetShipmentsOperator
    from usdirect.settings.config import operation_config
    from usdirect.targets.warehouse.audit import RunRecord

    usdirect = {"conn_type": "usdirect", "host": "https://api.usdirect.test/reseller/", "password": "T0KEN-1"}
    monkeypatch.setenv(*conn_env_var("ol_usdirect", usdirect))
    monkeypatch.setenv(*conn_env_var("ol_wh", {"conn_type": "duckdb", "host": str(tmp_path / "w.duckdb")}))
    account = {"id": "main", "usdirect_conn_id": "ol_usdirect", "warehouse_conn_id": "ol_wh"}
    cfg = operation_config(tmp_path / "dag.py", OPERATION, account, {"template": "t.yaml", "schedule": None})
    record = RunRecord("r1", "d", "fetch_shipments", OPERATION, "main", rows_in=7)
    run = OperationRun(OPERATION, cfg, cfg.accounts[0], record, "r1", "d", (None, None))

    lineage = operator_lineage(UsDirectGetShipmentsOperator.products, run, 0)
    assert lineage.outputs == []
    assert [(d.namespace, d.name) for d in lineage.inputs] == [
        ("https://api.usdirect.test:443", "/reseller/v1/shipments"),
        ("https://api.usdirect.test:443", "/reseller/v1/orders/{po}"),
        (f"duckdb://{tmp_path / 'w.duckdb'}", f"w.main.{pr.FULFILLMENT_REQUESTS}"),
    ]
    assert lineage.inputs[0].inputFacets["inputStatistics"].rowCount == 7
    fields = lineage.inputs[2].facets["schema"].fields
    assert [f.name for f in fields] == list(pr.table_record(pr.FULFILLMENT_REQUESTS).names)
    assert "T0KEN-1" not in repr(lineage)

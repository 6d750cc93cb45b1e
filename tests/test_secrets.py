"""No credential appears in anything a run leaves behind: CLI output, task logs, staging, warehouse.

Airflow's masker is not relied on alone (see airflow3-notes: `airflow dags test` has printed
connection secrets before), so this reads every byte the runs produced and searches for the
literal values.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.connections import conn_env_var


def _secrets(sb) -> dict[str, str]:
    key = parse_qs(urlsplit(sb.feed_url).query)["key"][0]
    return {
        "API Token": sb.api_token,
        "Reseller Token": sb.reseller_token,
        "platform token": sb.platform_token,
        "Feed URL": sb.feed_url,
        "feed key": key,
    }


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_dag_runs_leak_no_secret(airflow_db: Path, sandbox_factory, tmp_path: Path) -> None:
    sb = sandbox_factory(catalog_size=300)
    warehouse = tmp_path / "w.duckdb"
    staging = tmp_path / "staging"
    config = tmp_path / "usdirect.yaml"
    bundled = Path(os.environ["USDIRECT_CONFIG"]).read_text()
    mappings = Path(os.environ["USDIRECT_CONFIG"]).parent / "mappings"
    config.write_text(
        bundled.replace("url: null ", f"url: {staging} ", 1).replace(
            "template: mappings/", f"template: {mappings}/"
        )
    )
    env = os.environ.copy()
    connections = {**sb.connections(), "usdirect_warehouse": {"conn_type": "duckdb", "host": str(warehouse)}}
    env.update(dict(conn_env_var(cid, c) for cid, c in connections.items()))
    env.update({"USDIRECT_CONFIG": str(config), "USDIRECT_TARGETS": "warehouse,platform"})

    outputs = []
    # Send Orders verifies first (automatic: false): confirm, so that orders are really submitted.
    runs = {"usdirect_get_inventory": [], "usdirect_send_orders": ["-c", '{"confirm": true}']}
    for dag_id, conf in {**runs, "usdirect_get_invoices": []}.items():
        out = subprocess.run(
            [sys.executable, "-m", "airflow", "dags", "test", dag_id, *conf],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, f"{dag_id} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        outputs.append(out.stdout + out.stderr)

    assert staging.exists() and warehouse.exists()
    artefacts = _files(airflow_db / "logs") + _files(staging) + [warehouse]
    assert len(artefacts) > 3
    for name, value in _secrets(sb).items():
        for i, text in enumerate(outputs):
            assert value not in text, f"{name} appears in the output of DAG run {i}"
        for path in artefacts:
            assert value.encode() not in path.read_bytes(), f"{name} appears in {path}"


@pytest.mark.parametrize("credential", ["api_token", "reseller_token"])
def test_failed_credential_message_names_it_without_leaking(sandbox_factory, monkeypatch, credential) -> None:
    """A rejected credential is named in the error; its value is not."""
    from usdirect.hooks.usdirect import UsDirectHook

    sb = sandbox_factory(catalog_size=50)
    conn = sb.connections()["usdirect_default"]
    wrong = "wrong-" + "x" * 24
    if credential == "api_token":
        conn["password"] = wrong
    else:
        conn["extra"] = {**conn["extra"], "reseller_token": wrong}
    monkeypatch.setenv(*conn_env_var("usdirect_default", conn))
    ok, message = UsDirectHook().test_connection()
    assert not ok
    assert ("API Token" if credential == "api_token" else "Reseller Token") in message
    assert wrong not in message and sb.feed_url not in message

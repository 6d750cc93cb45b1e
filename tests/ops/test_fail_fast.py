"""Errors that waiting cannot fix end the task on its first try; transient ones keep their retries.

The real Get Inventory DAG runs through ``dag.test()`` against a private sandbox with task retries
configured (``tasks.retries: 2``); the proof is each task instance's try number, not the clock.
The failure alert goes to a local webhook and must name the typed cause behind Airflow's
``AirflowFailException``, not "unexpected AirflowFailException".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
import yaml

from sandbox.faults import FaultKind
from sandbox.runner import SandboxInfo
from tests.support.connections import conn_env_var, warehouse_conn
from tests.support.paths import REPO
from tests.support.receivers import WebhookReceiver
from tests.support.settings_file import write_settings

RETRIES = 2


@dataclass
class FailFastEnv:
    sandbox: SandboxInfo
    webhook: WebhookReceiver
    connections: dict[str, dict]
    monkeypatch: pytest.MonkeyPatch

    def set_connection(self, conn_id: str, **changes: Any) -> None:
        conn = {**self.connections[conn_id], **changes}
        self.monkeypatch.setenv(*conn_env_var(conn_id, conn))

    def dag(self) -> Any:
        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(dag_folder=str(REPO / "dags" / "usdirect_get_inventory.py"))
        assert bag.import_errors == {}
        return bag.get_dag("usdirect_get_inventory")

    def run(self, **kwargs: Any) -> Any:
        return self.dag().test(**kwargs)

    def alerts(self) -> list[dict]:
        return [r.json() for r in self.webhook.requests if r.path == "/alerts"]


def tries(run: Any) -> dict[str, tuple[str, int]]:
    """task id → (state, try number) of a finished DAG run."""
    return {ti.task_id: (str(ti.state), ti.try_number) for ti in run.get_task_instances()}


@pytest.fixture
def make_env(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    airflow_db: Path,
    sandbox_factory: Callable[..., SandboxInfo],
    request: pytest.FixtureRequest,
) -> Iterator[Callable[..., FailFastEnv]]:
    webhook = WebhookReceiver().start()

    def make(targets: list[str], templates: dict[str, Path] | None = None) -> FailFastEnv:
        sb = sandbox_factory(catalog_size=120)
        conns = sb.connections()
        for conn in conns.values():  # the hooks' own HTTP retries stay short
            conn["extra"] = {**conn.get("extra", {}), "max_attempts": 3, "backoff_base": 0.05}
        conns["ff_alerts"] = {"conn_type": "http", "host": "127.0.0.1", "port": webhook.port}
        conns["usdirect_warehouse"] = warehouse_conn("duckdb", request, tmp_path)
        for conn_id, conn in conns.items():
            monkeypatch.setenv(*conn_env_var(conn_id, conn))
        monkeypatch.setenv(
            "USDIRECT_CONFIG",
            str(
                write_settings(
                    tmp_path,
                    targets,
                    alerts_conn="ff_alerts",
                    needs_attention=False,
                    retries=RETRIES,
                    templates=templates,
                )
            ),
        )
        return FailFastEnv(sb, webhook, conns, monkeypatch)

    try:
        yield make
    finally:
        webhook.stop()


def _with_wrong_key(feed_url: str) -> str:
    parts = urlsplit(feed_url)
    query = [(k, "wrong-key-0000" if k == "key" else v) for k, v in parse_qsl(parts.query)]
    assert any(k == "key" for k, _ in query), "the sandbox feed URL carries its key in ?key="
    return urlunsplit(parts._replace(query=urlencode(query)))


def test_wrong_feed_key_fails_get_inventory_on_its_first_try(make_env: Callable[..., FailFastEnv]) -> None:
    env = make_env(["warehouse"])
    usdirect = env.connections["usdirect_default"]
    wrong = _with_wrong_key(usdirect["extra"]["feed_url"])
    env.set_connection("usdirect_default", extra={**usdirect["extra"], "feed_url": wrong})

    run = env.run()

    assert run.state == "failed"
    assert tries(run)["fetch_feed"] == ("failed", 1), f"retries={RETRIES} configured: {tries(run)}"
    [alert] = env.alerts()
    assert alert["task_id"] == "fetch_feed" and alert["try_number"] == 1
    assert alert["cause"].startswith("Feed URL rejected by US Direct ("), alert["cause"]
    portal = "copy the current Feed URL from the US Direct reseller portal into connection usdirect_default"
    assert portal in alert["fix"]
    assert "wrong-key-0000" not in str(alert)


def test_wrong_platform_token_fails_the_publish_on_its_first_try(
    make_env: Callable[..., FailFastEnv],
) -> None:
    env = make_env(["warehouse", "platform"])
    env.set_connection("flxpoint_default", password="not-the-platform-token")

    run = env.run()

    states = tries(run)
    assert run.state == "failed"
    assert states["load_inventory_warehouse"] == ("success", 1)
    assert states["publish_inventory_platform"] == ("failed", 1), states
    [alert] = env.alerts()
    assert alert["cause"] == "API Token rejected by the platform (401)"
    assert alert["fix"] == "update it on connection flxpoint_default, then press Test on the connection"
    assert "not-the-platform-token" not in str(alert)


def test_feed_guard_fails_at_once_and_the_alert_names_the_guard(make_env: Callable[..., FailFastEnv]) -> None:
    env = make_env(["warehouse"])
    assert env.run().state == "success"
    env.sandbox.set_feed_mode("short", share=0.5)

    run = env.run()

    assert run.state == "failed"
    assert tries(run)["map_feed"] == ("failed", 1), tries(run)
    [alert] = env.alerts()
    assert alert["task_id"] == "map_feed" and alert["try_number"] == 1
    assert alert["cause"].startswith("feed guard tripped, nothing was archived or zeroed: ")
    assert "fewer than the" in alert["cause"] and "max_shrink_share" in alert["cause"]
    assert '{"allow_shrink": true}' in alert["fix"]
    assert alert["guide"] == "README.md#inventory-not-importing-or-fields-missing"


def test_a_missing_warehouse_connection_fails_at_once(make_env: Callable[..., FailFastEnv]) -> None:
    env = make_env(["warehouse"])
    env.monkeypatch.delenv(conn_env_var("usdirect_warehouse", {})[0])

    run = env.run()

    states = tries(run)
    assert run.state == "failed"
    failed = [task for task, (state, _) in states.items() if state == "failed"]
    assert failed and all(states[task][1] == 1 for task in failed), states
    alert = env.alerts()[0]
    assert alert["cause"] == "connection usdirect_warehouse does not exist in this Airflow"


def test_a_warehouse_postgres_refuses_fails_at_once_naming_the_refusal(
    make_env: Callable[..., FailFastEnv],
) -> None:
    env = make_env(["warehouse"])
    refused = {"conn_type": "postgres", "host": "127.0.0.1", "port": 5432, "login": "usdirect_no_such_role"}
    env.monkeypatch.setenv(*conn_env_var("usdirect_warehouse", {**refused, "schema": "postgres"}))

    run = env.run()

    states = tries(run)
    failed = [task for task, (state, _) in states.items() if state == "failed"]
    assert run.state == "failed" and failed, states
    assert all(states[task][1] == 1 for task in failed), states
    alert = env.alerts()[0]
    assert alert["cause"].startswith(
        "the warehouse connection usdirect_warehouse cannot be used: Postgres refused warehouse connection "
        "'usdirect_warehouse': role \"usdirect_no_such_role\" does not exist. Fix: "
    ), alert["cause"]
    assert alert["fix"].startswith("correct connection usdirect_warehouse (Admin → Connections)")


def test_template_that_only_fails_to_compile_fails_the_task_on_its_first_try(
    tmp_path: Path, make_env: Callable[..., FailFastEnv]
) -> None:
    # The YAML shape is valid, so the DAG file imports; the type is checked when the task compiles it.
    mappings = REPO / "include" / "mappings"
    text = (mappings / "inventory.yaml").read_text()
    old = "    type: decimal(12,2)"
    line = text[: text.index(old)].count("\n") + 1
    template = tmp_path / "inventory.yaml"
    template.write_text(text.replace(old, "    type: decmal(12,2)", 1))
    (tmp_path / "value_maps.yaml").write_text((mappings / "value_maps.yaml").read_text())
    env = make_env(["warehouse"], templates={"get_inventory": template})

    run = env.run()

    states = tries(run)
    failed = [task for task, (state, _) in states.items() if state == "failed"]
    assert run.state == "failed" and failed, states
    assert all(states[task][1] == 1 for task in failed), states
    alert = env.alerts()[0]
    assert alert["cause"] == "the mapping template cannot be used as written"
    assert f"{template}:{line}: " in alert["fix"] and "decmal" in alert["fix"]


def test_settings_broken_while_a_run_is_in_flight_fail_the_next_task_at_once_and_still_alert(
    make_env: Callable[..., FailFastEnv],
) -> None:
    import os
    import threading
    import time

    env = make_env(["warehouse"])
    usdirect = env.connections["usdirect_default"]
    # The first feed attempt answers 503; the hook waits ~2 s before its retry: the typo lands then.
    env.set_connection("usdirect_default", extra={**usdirect["extra"], "backoff_base": 2.0})
    env.sandbox.set_faults([{"endpoint": "GET /feeds/*", "kind": FaultKind.HTTP_503, "times": 1}])
    settings = Path(os.environ["USDIRECT_CONFIG"])
    raw = yaml.safe_load(settings.read_text())
    raw["operations"]["send_orders"]["max_worker"] = 4

    def save_typo_once_the_feed_was_asked_for() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            feed = [v for k, v in env.sandbox.stats()["requests"].items() if k.startswith("GET /feeds/")]
            if feed and feed[0].get(FaultKind.HTTP_503.counter):
                settings.write_text(yaml.safe_dump(raw))
                return
            time.sleep(0.05)

    saver = threading.Thread(target=save_typo_once_the_feed_was_asked_for, daemon=True)
    saver.start()
    run = env.run()
    saver.join(timeout=5)

    line = settings.read_text().splitlines().index("    max_worker: 4") + 1
    states = tries(run)
    assert run.state == "failed"
    assert states["fetch_feed"] == ("success", 1), states
    assert states["map_feed"] == ("failed", 1), states
    [alert] = env.alerts()
    assert alert["task_id"] == "map_feed"
    assert alert["cause"] == (
        f"the usdirect config file is invalid: {settings}:{line}: operations.send_orders.max_worker is "
        "not a setting. Fix: delete it or correct the key (did you mean 'max_workers'?)"
    )
    assert alert["guide"] == "README.md#tasks-stay-queued-or-a-connection-is-missing"


def test_transient_feed_failures_keep_their_task_retries(make_env: Callable[..., FailFastEnv]) -> None:
    env = make_env(["warehouse"])
    # Every HTTP attempt of the first try answers 503; the second try gets the feed.
    env.sandbox.set_faults([{"endpoint": "GET /feeds/*", "kind": FaultKind.HTTP_503, "times": 3}])

    run = env.run()

    assert run.state == "success", tries(run)
    assert tries(run)["fetch_feed"] == ("success", 2)
    assert env.alerts() == []


def test_refused_platform_token_stops_shipment_and_invoice_delivery_instead_of_per_item_errors(
    sandbox_factory: Callable[..., SandboxInfo], monkeypatch: pytest.MonkeyPatch
) -> None:
    from usdirect.hooks.errors import AuthenticationError
    from usdirect.hooks.flxpoint import FlxpointHook
    from usdirect.targets.platform.orders import deliver_invoices, deliver_shipments

    sb = sandbox_factory(catalog_size=20)
    conn = {**sb.connections()["flxpoint_default"], "password": "not-the-platform-token"}
    monkeypatch.setenv(*conn_env_var("flxpoint_default", {**conn, "extra": {"max_attempts": 2}}))
    shipment = {
        "shipment_id": "SH-1",
        "po_number": "PO-1",
        "tracking_number": "1Z0001",
        "status": "in_transit",
        "ship_date": "2026-11-21",
    }
    invoice = {"invoice_number": "INV-1", "po_number": "PO-1", "status": "open", "total": "10.00"}

    with pytest.raises(AuthenticationError, match=r"API Token rejected \(401\)"):
        deliver_shipments(FlxpointHook(), [shipment, {**shipment, "shipment_id": "SH-2"}], {})
    with pytest.raises(AuthenticationError, match=r"API Token rejected \(401\)"):
        deliver_invoices(FlxpointHook(), [invoice], {})
    posts = {k: v for k, v in sb.stats("flxpoint")["requests"].items() if k.startswith("POST")}
    assert sum(sum(v.values()) for v in posts.values()) == 2, posts  # one refused call each, then stop

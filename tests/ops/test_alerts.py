"""Alerts and pools on real DAG runs: ``dag.test()`` runs DAGs built by the DAG factory; the failure
callback's notifiers POST to a local webhook receiver, a Slack-webhook receiver and a local SMTP server.
"""

from __future__ import annotations

import email
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml

from tests.support.connections import conn_env_var
from tests.support.paths import REPO
from tests.support.receivers import SmtpReceiver, WebhookReceiver

API_TOKEN = "tok-api-5f1d9a8c2b7e4f60"
RESELLER_TOKEN = "tok-reseller-9c3e7a1b5d"
FEED_URL = "http://127.0.0.1:9/feeds/inventory.csv?key=feedkey-77a1c0ffee"
SECRETS = (API_TOKEN, RESELLER_TOKEN, FEED_URL, "feedkey-77a1c0ffee")

DAG_FILE = textwrap.dedent(
    '''
    """Test DAGs built by the real factory; each task shows one alert path."""
    from airflow.sdk import task

    from usdirect.dag_factory import build_dags


    def define_failing_invoices(cfg, account):
        @task(retries=1, retry_delay=0)
        def fetch_invoices():
            from usdirect.hooks.errors import AuthenticationError

            raise AuthenticationError(
                "Reseller Token",
                401,
                "Reseller Token rejected (401) on invoice lookup: re-enter the Reseller Token on the "
                f"usdirect connection '{account.usdirect_conn_id}' and run Test Connection",
            )

        fetch_invoices()


    def define_leaky_shipments(cfg, account):
        @task(retries=0)
        def fetch_shipments():
            from airflow.sdk import BaseHook

            conn = BaseHook.get_connection(account.usdirect_conn_id)
            feed = conn.extra_dejson["feed_url"]
            raise RuntimeError(f"GET {feed} failed with token {conn.password}")

        fetch_shipments()


    def define_attention_inventory(cfg, account):
        @task(retries=0)
        def load_inventory():
            from usdirect.notifications.notifier import alert_needs_attention
            from usdirect.operators.base import operation_run

            with operation_run("get_inventory", account.id) as run:
                run.record.rows_in = 100
                alert_needs_attention(
                    run,
                    "feed_guard_tripped",
                    "the feed has 40 rows, the last good one 100 (60% shorter): nothing archived",
                    {"rows_in_feed": 40, "rows_last_good": 100},
                )

        load_inventory()


    globals().update(build_dags("get_invoices", define_failing_invoices))
    globals().update(build_dags("get_shipments", define_leaky_shipments))
    globals().update(build_dags("get_inventory", define_attention_inventory))
    '''
)


@dataclass
class AlertEnv:
    webhook: WebhookReceiver
    smtp: SmtpReceiver
    dags_folder: Path
    warehouse: Path

    def dag(self, dag_id: str):  # -> airflow.sdk.DAG
        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(dag_folder=str(self.dags_folder))
        assert bag.import_errors == {}
        return bag.get_dag(dag_id)


def _config(tmp_path: Path, channels: list[dict]) -> Path:
    raw = yaml.safe_load((REPO / "include" / "usdirect.yaml").read_text())
    for op in raw["operations"].values():
        op["template"] = str(REPO / "include" / op["template"])
    raw["accounts"] = [
        {**raw["accounts"][0], "id": "main"},
        {"id": "east", "usdirect_conn_id": "usdirect_east", "pool_slots": 1, "warehouse_schema": "east"},
    ]
    raw["alerts"] = {"on_failure": True, "needs_attention": True, "channels": channels}
    raw["staging"] = {"url": str(tmp_path / "staging")}
    path = tmp_path / "usdirect.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture
def alert_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airflow_db: Path) -> Iterator[AlertEnv]:
    webhook, smtp = WebhookReceiver().start(), SmtpReceiver().start()
    channels = [
        {"type": "http", "conn_id": "ops_webhook", "endpoint": "/alerts"},
        {"type": "slack", "conn_id": "ops_slack"},
        {"type": "email", "conn_id": "ops_smtp", "to": ["oncall@example.com"]},
    ]
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "alert_dags.py").write_text(DAG_FILE)
    warehouse = tmp_path / "warehouse.duckdb"
    conns = {
        "ops_webhook": {"conn_type": "http", "host": "127.0.0.1", "port": webhook.port, "schema": "http"},
        "ops_slack": {"conn_type": "slackwebhook", "password": f"{webhook.url}/slack/T0/B0/abc"},
        "ops_smtp": {
            "conn_type": "smtp",
            "host": "127.0.0.1",
            "port": smtp.port,
            "extra": {"from_email": "airflow@example.com", "disable_tls": True, "disable_ssl": True},
        },
        "usdirect_default": {
            "conn_type": "usdirect",
            "host": "http://127.0.0.1:9",
            "password": API_TOKEN,
            "extra": {"feed_url": FEED_URL, "reseller_token": RESELLER_TOKEN},
        },
        "usdirect_warehouse": {"conn_type": "duckdb", "host": str(warehouse)},
    }
    for conn_id, conn in conns.items():
        monkeypatch.setenv(*conn_env_var(conn_id, conn))
    monkeypatch.setenv("USDIRECT_CONFIG", str(_config(tmp_path, channels)))
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(dags))
    try:
        yield AlertEnv(webhook, smtp, dags, warehouse)
    finally:
        webhook.stop()
        smtp.stop()


def _email_text(raw: bytes) -> str:
    msg: Message = email.message_from_bytes(raw)
    parts = msg.walk() if msg.is_multipart() else [msg]
    return "".join(p.get_payload(decode=True).decode() for p in parts if p.get_content_type() == "text/html")


def test_failed_task_alerts_every_channel_with_cause_fix_and_log_link(alert_env: AlertEnv) -> None:
    dag = alert_env.dag("usdirect_get_invoices")
    run = dag.test()
    assert run.state == "failed"

    posted = alert_env.webhook.wait_for(lambda r: r.path == "/alerts").json()
    assert posted["kind"] == "failure"
    assert posted["dag_id"] == "usdirect_get_invoices"
    assert posted["task_id"] == "fetch_invoices"
    assert posted["run_id"] == run.run_id
    assert posted["try_number"] == 2, "the alert comes after the retry, naming the last try"
    assert posted["account"] == "main"
    assert posted["cause"] == "Reseller Token rejected by US Direct (401)"
    assert posted["fix"] == "update it on connection usdirect_default, then press Test on the connection"
    assert posted["guide"] == "README.md#connection-not-authenticating"
    run_path = quote(run.run_id)
    assert posted["log_url"].endswith(
        f"/dags/usdirect_get_invoices/runs/{run_path}/tasks/fetch_invoices?try_number=2"
    )
    assert "Reseller Token rejected" in posted["text"] and posted["log_url"] in posted["text"]
    assert len([r for r in alert_env.webhook.requests if r.path == "/alerts"]) == 1

    slack = alert_env.webhook.wait_for(lambda r: r.path.startswith("/slack/")).json()
    assert slack["text"] == posted["text"]

    assert len(alert_env.smtp.messages) == 1
    mail = alert_env.smtp.messages[0]
    assert "oncall@example.com" in mail["rcpt"][0]
    body = _email_text(mail["data"])
    assert "update it on connection usdirect_default" in body
    assert "US Direct task failed: usdirect_get_invoices.fetch_invoices" in mail["data"].decode()


def test_alert_never_carries_a_secret_even_when_the_error_quotes_one(alert_env: AlertEnv) -> None:
    run = alert_env.dag("usdirect_get_shipments").test()
    assert run.state == "failed"
    posted = alert_env.webhook.wait_for(lambda r: r.path == "/alerts")
    assert posted.json()["guide"] == "README.md#no-tracking-updates"
    sent = [r.body.decode() for r in alert_env.webhook.requests] + [
        m["data"].decode() for m in alert_env.smtp.messages
    ]
    assert sent
    for text in sent:
        for secret in SECRETS:
            assert secret not in text
    assert "http://127.0.0.1:9/feeds/inventory.csv?***" in posted.json()["cause"]


def test_successful_run_that_needs_a_person_sends_an_attention_alert(alert_env: AlertEnv) -> None:
    import duckdb

    run = alert_env.dag("usdirect_get_inventory").test()
    assert run.state == "success"
    posted = alert_env.webhook.wait_for(lambda r: r.path == "/alerts").json()
    assert posted["kind"] == "needs_attention"
    assert posted["reason"] == "feed_guard_tripped"
    assert (
        posted["title"]
        == "US Direct run needs attention: usdirect_get_inventory.load_inventory (account main)"
    )
    assert "60% shorter" in posted["cause"]
    assert '{"allow_shrink": true}' in posted["fix"]
    assert posted["details"] == {"rows_in_feed": "40", "rows_last_good": "100"}
    with duckdb.connect(str(alert_env.warehouse), read_only=True) as db:
        outcome = db.execute(
            "SELECT outcome, rows_in FROM usdirect_runs WHERE dag_id = 'usdirect_get_inventory'"
        )
        assert outcome.fetchall() == [("success", 100)]


def test_a_failing_channel_does_not_stop_the_others(alert_env: AlertEnv) -> None:
    alert_env.webhook.status = 500  # the http and slack channels both fail
    run = alert_env.dag("usdirect_get_invoices").test()
    assert run.state == "failed"
    assert len(alert_env.smtp.messages) == 1


def test_each_account_gets_its_own_pool_and_dag_ids(alert_env: AlertEnv) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(alert_env.dags_folder))
    pools = {dag_id: {t.pool for t in dag.tasks} for dag_id, dag in bag.dags.items()}
    assert pools == {
        "usdirect_get_invoices": {"usdirect_main"},
        "usdirect_get_shipments": {"usdirect_main"},
        "usdirect_get_inventory": {"usdirect_main"},
        "usdirect_east_get_invoices": {"usdirect_east"},
        "usdirect_east_get_shipments": {"usdirect_east"},
        "usdirect_east_get_inventory": {"usdirect_east"},
    }
    east = bag.get_dag("usdirect_east_get_invoices")
    assert "account:east" in east.tags

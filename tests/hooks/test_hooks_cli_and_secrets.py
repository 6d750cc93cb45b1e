"""Test Connection through the Airflow CLI, pacing against the real server limits, and secrets.

No token, feed URL or feed key may appear in CLI output, log records (including httpx's own
request lines) or exception text, whatever the outcome of the call.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import traceback
from pathlib import Path

import pytest

from sandbox.faults import FaultKind
from sandbox.runner import SandboxInfo
from tests.support.hooks import FAST, order_payload, set_connections
from usdirect.hooks.errors import UsDirectError
from usdirect.hooks.flxpoint import FlxpointHook
from usdirect.hooks.usdirect import UsDirectHook


def secrets_of(info: SandboxInfo) -> list[str]:
    """Every secret literal of a sandbox (the feed key on its own too)."""
    return [
        info.api_token,
        info.reseller_token,
        info.platform_token,
        info.feed_url,
        info.feed_url.split("key=", 1)[1],
        info.readonly_api_token,
        info.other_reseller_token,
    ]


def assert_no_secret(text: str, secrets: list[str]) -> None:
    leaked = [f"{s[:4]}..." for s in secrets if s in text]
    assert not leaked, f"secrets leaked (shown by prefix): {leaked}"


def airflow_test_connection(conn_id: str, conn: dict) -> subprocess.CompletedProcess[str]:
    env = os.environ | {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn)}
    return subprocess.run(
        [sys.executable, "-m", "airflow", "connections", "test", conn_id],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_cli_test_connection_names_each_failed_credential(sandbox: SandboxInfo) -> None:
    good = sandbox.connections()["usdirect_default"]
    ok = airflow_test_connection("usdirect_default", good)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "Connection success!" in ok.stdout

    wrong = {
        **good,
        "password": sandbox.api_token[:-3] + "xyz",
        "extra": {
            "extra__usdirect__feed_url": sandbox.feed_url + "0",
            "extra__usdirect__reseller_token": sandbox.other_reseller_token + "0",
        },
    }
    failed = airflow_test_connection("ud_wrong", wrong)
    output = failed.stdout + failed.stderr
    assert failed.returncode == 1
    text = " ".join(output.split())  # the CLI wraps long lines
    assert "API Token rejected (401): re-enter the API Token on the usdirect connection 'ud_wrong'" in text
    assert "Feed URL rejected (401): re-enter the Feed URL" in text
    assert (
        "Reseller Token rejected (401): re-enter the Reseller Token on the usdirect connection 'ud_wrong'; "
        "Get Invoice needs it" in text
    )
    assert_no_secret(output + ok.stdout + ok.stderr, [*secrets_of(sandbox), wrong["password"]])

    platform = airflow_test_connection(
        "fx_wrong", {**sandbox.connections()["flxpoint_default"], "password": "nope1"}
    )
    assert platform.returncode == 1
    assert (
        "API Token rejected (401): re-enter the API Token on the flxpoint connection 'fx_wrong'"
        in " ".join(platform.stdout.split())
    )


def test_no_secret_in_logs_or_errors(
    sandbox_factory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capsys, tmp_path: Path
) -> None:
    info = sandbox_factory(catalog_size=200)
    secrets = secrets_of(info)
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")  # it logs every request URL (the feed URL!) at INFO
    messages: list[str] = []

    def attempt(call) -> None:
        try:
            call()
        except UsDirectError as exc:
            messages.extend([str(exc), repr(exc), "".join(traceback.format_exception(exc))])

    set_connections(monkeypatch, info, usdirect={"max_attempts": 3})
    info.set_faults(
        [
            {"endpoint": "GET /feeds/*", "kind": FaultKind.TRUNCATE, "times": 1},
            {"endpoint": "HEAD /feeds/*", "kind": FaultKind.HTTP_503, "times": 1},
            {"endpoint": "GET /v1/ping", "kind": FaultKind.RESET, "times": 1},
        ]
    )
    ud, fx = UsDirectHook(), FlxpointHook()
    attempt(lambda: ud.download_feed(tmp_path / "feed.csv"))
    attempt(ud.head_feed)
    attempt(ud.ping)
    attempt(lambda: ud.submit_order(order_payload("SEC-1", "100001", name=info.api_token)))
    attempt(lambda: next(fx.iter_variants()))
    info.set_faults([{"endpoint": "* *", "kind": FaultKind.HTTP_503}])
    attempt(lambda: ud.download_feed(tmp_path / "feed2.csv"))
    attempt(ud.reseller_ping)
    info.clear_faults()
    messages.append("\n".join(ud.test_connection()[1:]))

    set_connections(
        monkeypatch,
        info,
        usdirect={"password": info.readonly_api_token, "reseller_token": info.other_reseller_token},
        flxpoint={"password": info.api_token},
    )
    ud, fx = UsDirectHook(), FlxpointHook()
    attempt(lambda: ud.submit_order(order_payload("SEC-2", "100001")))
    attempt(lambda: ud.get_invoice("SEC-1"))
    attempt(lambda: fx.mark_processed(1, None))
    messages.append("\n".join(ud.test_connection()[1:]))
    messages.append("\n".join(fx.test_connection()[1:]))

    captured = capsys.readouterr()
    everything = "\n".join([*messages, caplog.text, captured.out, captured.err])
    assert "HTTP Request" in caplog.text  # httpx's request lines were captured, and scrubbed
    assert "***" in caplog.text
    assert len(messages) > 10
    assert_no_secret(everything, secrets)


def test_pacing_keeps_threads_under_the_server_limits(sandbox_factory, monkeypatch) -> None:
    """Default limits (5/s US Direct, 2/s platform) on the server and in the hooks: no 429."""
    info = sandbox_factory(catalog_size=200)
    monkeypatch.setenv("AIRFLOW_CONN_X_UD", json.dumps(info.connections()["usdirect_default"]))
    set_connections(monkeypatch, info, fast=False)
    shared = UsDirectHook()
    hooks = [shared, shared, UsDirectHook(), UsDirectHook("x_ud")]  # threads and hooks share the token
    platform = FlxpointHook()
    errors: list[BaseException] = []

    def run(call, times: int) -> None:
        try:
            for _ in range(times):
                call()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(h.ping, 6)) for h in hooks]
    threads += [
        threading.Thread(target=run, args=(lambda: next(platform.iter_variants()), 3)) for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    us, fx = info.stats("usdirect"), info.stats("flxpoint")
    assert us["requests"]["GET /v1/ping"] == {"200": 24}
    assert fx["requests"]["GET /inventory/variants"] == {"200": 6}
    assert us["peak_rps"]["api_token"] <= 5
    assert fx["peak_rps"]["platform_token"] <= 2
    assert FAST  # the fast extras are not in play here: real defaults

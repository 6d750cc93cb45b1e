"""Send Orders when people and credentials get in the way: a refused API Token stops the run at
the first order, and two runs at once (on Postgres for a warehouse and a platform-only account,
and on a DuckDB file) split the work so that US Direct receives every PO exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sandbox.runner import SandboxInfo
from tests.support.connections import conn_env_var, warehouse_conn
from tests.support.orders import ORDERS_TEMPLATE, usdirect_frs, use_sandbox
from usdirect.domain.errors import PermanentError
from usdirect.hooks.usdirect import UsDirectHook
from usdirect.notifications.troubleshooting import diagnose
from usdirect.pipelines import orders
from usdirect.settings.config import Account
from usdirect.targets.warehouse import demo
from usdirect.targets.warehouse import fulfillment_requests as frq
from usdirect.targets.warehouse import order_tables as ot
from usdirect.targets.warehouse.sql import Warehouse


def _posts(sb: SandboxInfo) -> dict[str, int]:
    return sb.stats()["requests"].get("POST /v1/orders", {})


def _ledger(wh: Warehouse) -> dict[str, tuple[str, int, str | None]]:
    with wh.connect() as conn:
        rows = wh.fetchall(conn, f"SELECT po_number, status, attempts, last_error FROM {wh.table(ot.FR)}")
    return {po: (status, attempts, error) for po, status, attempts, error in rows}


@pytest.mark.parametrize(
    ("token", "status", "cause", "fix"),
    [
        (
            "wrong",
            "401",
            "API Token rejected by US Direct (401)",
            "update it on connection usdirect_default, then press Test",
        ),
        (
            "readonly",
            "403",
            "API Token is valid but has no access to this resource at US Direct (403)",
            "ask US Direct to enable this resource for the account behind the API Token on connection "
            "usdirect_default",
        ),
    ],
)
def test_a_refused_api_token_stops_at_the_first_order_and_leaves_the_rest_pending(
    sandbox_factory: Any,
    duck_wh: Warehouse,
    orders_template: Any,
    monkeypatch: pytest.MonkeyPatch,
    token: str,
    status: str,
    cause: str,
    fix: str,
) -> None:
    sb = sandbox_factory()
    use_sandbox(sb, monkeypatch)
    api_token = "wrong-token-" + "x" * 20 if token == "wrong" else sb.readonly_api_token
    conn = sb.connections()["usdirect_default"] | {"password": api_token}
    monkeypatch.setenv(*conn_env_var("usdirect_default", conn))
    assert demo.seed_demo_requests(duck_wh, sb.platform("fulfillment-requests")) == 26

    with pytest.raises(orders.CredentialRefusedError) as caught:
        orders.send_orders(orders_template, UsDirectHook(), orders.SendOptions(max_workers=4), wh=duck_wh)

    assert _posts(sb) == {status: 1}  # the first order only, never one refusal per order
    assert sb.creation_counts() == {}
    ledger = _ledger(duck_wh)
    valid = [po for po, (st, _, _) in ledger.items() if st != "needs_attention"]
    assert len(valid) == 21
    (first,) = [po for po in valid if ledger[po][1] == 1]  # the one order that was tried
    others = [po for po in valid if po != first]
    assert ledger[first][0] == "pending" and "API Token" in ledger[first][2]
    assert {ledger[po][:2] for po in others} == {("pending", 0)}
    error = caught.value
    assert isinstance(error, PermanentError)  # Airflow fails the task at once, without retries
    assert error.report.count(orders.OutcomeKind.NOT_SENT) == len(others)
    assert f"stopped at PO {first}" in str(error) and f"{len(others)} other order(s)" in str(error)
    assert api_token not in str(error)
    diagnosis = diagnose(error, Account(id="main"), "send_orders")
    assert diagnosis.cause == cause
    assert diagnosis.fix.startswith(fix)
    assert "the orders stay pending" in diagnosis.fix
    assert "nothing to resend by hand" not in diagnosis.fix

    # Once the token is fixed, the next run sends every order, each once.
    use_sandbox(sb, monkeypatch)
    report = orders.send_orders(
        orders_template, UsDirectHook(), orders.SendOptions(max_workers=4), wh=duck_wh
    )
    assert report.count(orders.OutcomeKind.SUBMITTED) == len(valid) and report.unfinished == []
    assert {c["created"] for c in sb.creation_counts().values()} == {1}


def test_a_refused_token_while_resolving_an_unknown_outcome_keeps_the_po_submitting(
    sandbox_factory: Any, duck_wh: Warehouse, orders_template: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first PO was left ``submitting`` by a dead worker: its lookup gets the 401, so whether
    US Direct has it stays unknown and it must stay ``submitting`` (never reset to pending)."""
    sb = sandbox_factory()
    use_sandbox(sb, monkeypatch)
    assert demo.seed_demo_requests(duck_wh, sb.platform("fulfillment-requests")) == 26
    with duck_wh.connect() as conn:
        first = frq.open_fulfillment_requests(duck_wh, conn)[0].po_number
    frq.mark_submitting(duck_wh, first)
    conn = sb.connections()["usdirect_default"] | {"password": "wrong-token-" + "x" * 20}
    monkeypatch.setenv(*conn_env_var("usdirect_default", conn))

    with pytest.raises(orders.CredentialRefusedError) as caught:
        orders.send_orders(orders_template, UsDirectHook(), orders.SendOptions(), wh=duck_wh)

    requests = sb.stats()["requests"]
    assert "POST /v1/orders" not in requests
    assert [by for k, by in requests.items() if k.startswith("GET /v1/orders/")] == [{"401": 1}]
    ledger = _ledger(duck_wh)
    assert ledger[first][:2] == ("submitting", 1) and "API Token" in ledger[first][2]
    others = {v[:2] for po, v in ledger.items() if po != first and v[0] != "needs_attention"}
    assert others == {("pending", 0)}
    assert f"stopped at PO {first}: it stays submitting" in str(caught.value)


CONCURRENT_RUN = """
import json, os, sys, time
from pathlib import Path
from usdirect.hooks.flxpoint import FlxpointHook
from usdirect.hooks.usdirect import UsDirectHook
from usdirect.mapping import load_template
from usdirect.pipelines import orders
from usdirect.targets.warehouse.sql import Warehouse

template = load_template(sys.argv[1])
wh = Warehouse.from_conn_id("wh_orders", schema=os.environ["WH_SCHEMA"] or None)
platform = FlxpointHook() if os.environ["ACCOUNT"] == "platform" else None
go = Path(os.environ["GO_FILE"])
while not go.exists():  # imports done: start together (plus this run's delay)
    time.sleep(0.01)
time.sleep(float(os.environ["DELAY"]))
options = orders.SendOptions(max_workers=4)
report = orders.send_orders(template, UsDirectHook(), options, wh=wh, platform=platform)
print(json.dumps(report.counts))
"""


@pytest.mark.parametrize(
    ("engine", "account"), [("postgres", "warehouse"), ("postgres", "platform"), ("duckdb", "warehouse")]
)
def test_two_runs_at_once_send_every_po_exactly_once(
    request: pytest.FixtureRequest,
    sandbox_factory: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    engine: str,
    account: str,
) -> None:
    """Run B starts while run A has orders in flight: B must neither re-claim A's pending POs
    (atomic claim) nor resend A's in-flight ``submitting`` ones after a 404 lookup (claim locks)."""
    sb = sandbox_factory()
    # Two processes pace on one token without a shared pacer, so 429s are expected here; the runs
    # must overlap, so keep the real limits and give the retries room on a loaded machine.
    use_sandbox(sb, monkeypatch, max_attempts=20)
    schema = f"claims_{account}_{os.getpid()}_{int(time.time() * 1000) % 100000}"
    schema = schema if engine == "postgres" else ""  # DuckDB: a file of its own
    monkeypatch.setenv(*conn_env_var("wh_orders", warehouse_conn(engine, request, tmp_path)))
    wh = Warehouse.from_conn_id("wh_orders", schema=schema or None)
    with wh.connect() as conn:  # the tables exist after the first run ever; create them up front
        ot.ensure_tables(wh, conn)
    if account == "warehouse":
        assert demo.seed_demo_requests(wh, sb.platform("fulfillment-requests")) == 26
    go = tmp_path / "go"
    env = os.environ | {"WH_SCHEMA": schema, "ACCOUNT": account, "GO_FILE": str(go)}
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT_RUN, str(ORDERS_TEMPLATE)],
            env=env | {"DELAY": delay},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for delay in ("0", "0.8")
    ]
    time.sleep(3)  # both processes import and wait for the start signal
    go.touch()
    results = [run.communicate(timeout=180) for run in runs]
    for run, (_, err) in zip(runs, results, strict=True):
        assert run.returncode == 0, err[-3000:]
    counts = [json.loads(out.strip().splitlines()[-1]) for out, _ in results]

    posts = sb.creation_counts()
    ledger = _ledger(wh)
    valid = {po for po, (st, _, _) in ledger.items() if st != "needs_attention"}
    assert len(valid) == 21 and len(ledger) == 26
    assert set(posts) == valid
    assert {po: c["submitted"] for po, c in posts.items()} == dict.fromkeys(valid, 1), posts
    created = [
        c[orders.OutcomeKind.SUBMITTED] - c["found_existing"] for c in counts
    ]  # the rest were looked up
    assert sum(created) == len(valid), counts
    assert all(n > 0 for n in created), f"both runs should have sent some: {counts}"
    assert {ledger[po][:2] for po in valid} == {("submitted", 1)}
    if account == "platform":
        frs = {fr["fulfillmentRequestNumber"]: fr for fr in sb.platform("fulfillment-requests")}
        assert all(frs[po]["status"] in ("Processed", "Failed") for po in valid)


HOLD_CLAIM = """
import os, sys, time
from pathlib import Path
from usdirect.targets.warehouse.order_claims import claim_locks
from usdirect.targets.warehouse.sql import Warehouse

wh = Warehouse.from_conn_id("wh_orders", schema=os.environ["WH_SCHEMA"] or None)
with claim_locks(wh) as locks:
    assert locks.acquire(sys.argv[1])
    print("held", flush=True)
    while not Path(os.environ["DONE_FILE"]).exists():
        time.sleep(0.05)
"""


def test_a_po_another_live_run_is_sending_is_left_alone(
    sandbox_factory: Any,
    warehouse: Warehouse,
    orders_template: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """A ``submitting`` PO may be a dead worker's (look it up, resend after a 404) or one another
    run is POSTing right now (a 404 proves nothing yet). Only the claim lock tells them apart."""
    sb = sandbox_factory()
    use_sandbox(sb, monkeypatch)
    assert demo.seed_demo_requests(warehouse, sb.platform("fulfillment-requests")) == 26
    busy = usdirect_frs(sb)[0]["fulfillmentRequestNumber"]
    frq.mark_submitting(warehouse, busy)  # the other run claimed it and its POST is on the way
    done = tmp_path / "done"
    env = os.environ | {"WH_SCHEMA": warehouse.schema or "", "DONE_FILE": str(done)}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_CLAIM, busy], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        report = orders.send_orders(orders_template, UsDirectHook(), orders.SendOptions(), wh=warehouse)
    finally:
        done.touch()
        holder.wait(timeout=30)
    (left,) = [o for o in report.outcomes if o.po_number == busy]
    assert left.kind == orders.OutcomeKind.CLAIMED_ELSEWHERE and report.unfinished == []
    assert busy not in sb.creation_counts()
    assert not [k for k in sb.stats()["requests"] if k.startswith("GET /v1/orders/")]
    assert _ledger(warehouse)[busy][:2] == ("submitting", 1)  # the other run records its outcome
    # Once that run is gone, the next run resolves the PO as usual: look up first, then send.
    again = orders.send_orders(orders_template, UsDirectHook(), orders.SendOptions(), wh=warehouse)
    assert [o.kind for o in again.outcomes if o.po_number == busy] == [orders.OutcomeKind.SUBMITTED]
    assert sb.creation_counts()[busy] == {"submitted": 1, "created": 1}

"""The platform publish against the sandbox platform over real HTTP: exact call counts, values,
sync switches, notFound handling and resuming a publish that died half-way."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from sandbox.faults import FaultKind
from sandbox.runner import SandboxInfo
from tests.support.connections import conn_env_var
from tests.support.paths import REPO
from usdirect.engine.transform import transform_feed
from usdirect.hooks.errors import UsDirectError
from usdirect.hooks.flxpoint import FlxpointHook
from usdirect.hooks.usdirect import UsDirectHook
from usdirect.mapping import Template, load_template
from usdirect.targets.platform.inventory import Plan, plan_publish, publish, published
from usdirect.targets.warehouse.sql import Warehouse

ACCOUNT = "main"


def _connect(monkeypatch: pytest.MonkeyPatch, sb: SandboxInfo, tmp_path: Path, **flx_extra: Any) -> Warehouse:
    conns = sb.connections()
    conns["flxpoint_default"]["extra"] = flx_extra
    for conn_id, conn in conns.items():
        monkeypatch.setenv(*conn_env_var(conn_id, conn))
    monkeypatch.setenv(
        *conn_env_var("state_wh", {"conn_type": "duckdb", "host": str(tmp_path / "state.duckdb")})
    )
    return Warehouse.from_conn_id("state_wh")


def _mapped(tmp_path: Path, template: Template, name: str) -> Path:
    feed = UsDirectHook().download_feed(tmp_path / f"{name}.csv").path
    assert feed is not None
    out = tmp_path / f"{name}.parquet"
    transform_feed(feed, template, out, tmp_path / f"{name}.rejects.parquet")
    return out


def _plan(wh: Warehouse, mapped: Path, tmp_path: Path, template: Template, full: bool = True) -> Plan:
    writable = frozenset(template.writable_fields())
    return plan_publish(wh, ACCOUNT, mapped, tmp_path / "plan", writable, full=full)


def _send(wh: Warehouse, plan: Plan, template: Template, mapped: Path) -> Any:
    return publish(FlxpointHook(), wh, ACCOUNT, "run", plan, frozenset(template.writable_fields()), mapped)


def _ok_calls(sb: SandboxInfo, endpoint: str) -> int:
    return sb.stats("flxpoint")["requests"].get(endpoint, {}).get("200", 0)


@pytest.fixture
def template() -> Template:
    return load_template(REPO / "include" / "mappings" / "inventory.yaml")


def test_publish_resumes_after_a_failure_and_then_has_nothing_to_send(
    sandbox_factory: Callable[..., SandboxInfo],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    template: Template,
) -> None:
    sb = sandbox_factory(catalog_size=200, platform_rate_limit=0)
    wh = _connect(monkeypatch, sb, tmp_path, max_attempts=1, rate_limit=50)
    mapped = _mapped(tmp_path, template, "v0")
    plan = _plan(wh, mapped, tmp_path, template)
    assert plan.updated == plan.archived == 0 and plan.created > 100
    assert plan.calls == math.ceil(plan.created / 20)

    # The 4th create call fails for good (the run dies): three batches landed and are remembered.
    sb.set_faults(
        [{"endpoint": "POST /inventory/parents", "kind": FaultKind.HTTP_500, "skip": 3, "times": 1000}]
    )
    with pytest.raises(UsDirectError):
        _send(wh, plan, template, mapped)
    sb.clear_faults()
    assert published(wh, ACCOUNT).num_rows == 60

    resumed = _plan(wh, mapped, tmp_path, template)
    assert resumed.created == plan.created - 60
    before = _ok_calls(sb, "POST /inventory/parents")
    counts = _send(wh, resumed, template, mapped)
    assert (
        _ok_calls(sb, "POST /inventory/parents") - before
        == math.ceil(resumed.created / 20)
        == counts.post_calls
    )

    variants = {v["sku"]: v for v in sb.platform("variants")}
    truth = {f"USD-{r['sku']}": r for r in sb.catalog_truth()["rows"] if r["status"] != "discontinued"}
    assert set(variants) == set(truth)
    for sku, r in truth.items():
        assert variants[sku]["cost"] == float(r["cost"]) and variants[sku]["quantity"] == min(
            r["quantity"], 100
        )

    again = _plan(wh, mapped, tmp_path, template)
    assert again.calls == 0 and again.unchanged == plan.created


def test_sync_switches_limit_what_is_sent(
    sandbox_factory: Callable[..., SandboxInfo],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    template: Template,
) -> None:
    sb = sandbox_factory(catalog_size=200, platform_rate_limit=0)
    wh = _connect(monkeypatch, sb, tmp_path, rate_limit=50)
    v0 = _mapped(tmp_path, template, "v0")
    _send(wh, _plan(wh, v0, tmp_path, template), template, v0)
    costs = {v["sku"]: v["cost"] for v in sb.platform("variants")}

    sb.next_catalog_version(price=0.2, quantity=0.0, new=0.0, removed=0.0)
    v1 = _mapped(tmp_path, template, "v1")
    no_pricing = template.with_switches(sync_pricing=False)
    plan = _plan(wh, v1, tmp_path, no_pricing)
    assert plan.calls == 0  # only prices changed and prices are not synced

    plan = _plan(wh, v1, tmp_path, template)
    assert plan.updated >= 20
    counts = _send(wh, plan, template, v1)
    assert counts.put_calls == math.ceil(plan.updated / 50)
    changed = {v["sku"] for v in sb.platform("variants") if v["cost"] != costs[v["sku"]]}
    assert len(changed) == plan.updated


def test_not_found_variants_are_created(
    sandbox_factory: Callable[..., SandboxInfo],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    template: Template,
) -> None:
    """The ledger says published, but the platform lost the variants (a reset platform account)."""
    first = sandbox_factory(catalog_size=100, platform_rate_limit=0)
    wh = _connect(monkeypatch, first, tmp_path, rate_limit=50)
    v0 = _mapped(tmp_path, template, "v0")
    _send(wh, _plan(wh, v0, tmp_path, template), template, v0)
    first.next_catalog_version(price=0.3, quantity=0.0, new=0.0, removed=0.0)
    v1 = _mapped(tmp_path, template, "v1")

    second = sandbox_factory(catalog_size=100, platform_rate_limit=0)  # same catalog, empty platform
    conns = second.connections()
    conns["flxpoint_default"]["extra"] = {"rate_limit": 50}
    monkeypatch.setenv(*conn_env_var("flxpoint_default", conns["flxpoint_default"]))
    seeded = {v["sku"] for v in second.platform("variants")}  # variants its seeded orders refer to
    plan = _plan(wh, v1, tmp_path, template)
    sent = set(pq.read_table(plan.updates).column("sku").to_pylist())
    counts = _send(wh, plan, template, v1)
    assert counts.not_found == counts.created == len(sent - seeded) > 0
    assert counts.post_calls == math.ceil(len(sent - seeded) / 20)
    assert {v["sku"] for v in second.platform("variants")} == seeded | sent

"""Many accounts in one deployment: one settings read per DAG-file parse, own pools, own pacing,
and no two accounts on one set of order tables."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.connections import conn_env_var
from tests.support.paths import REPO
from usdirect.hooks import ratelimit, ratelimit_redis
from usdirect.settings import config as config_module
from usdirect.settings import template_check
from usdirect.settings.config import ConfigError, load_config

DAGS = REPO / "dags"


def accounts_settings(tmp_path: Path, count: int, **account: Any) -> Path:
    """The bundled settings with ``count`` accounts, each on its own connection and warehouse schema."""
    raw = yaml.safe_load((REPO / "include" / "usdirect.yaml").read_text())
    for op in raw["operations"].values():
        op["template"] = str(REPO / "include" / op["template"])
    raw["accounts"] = [
        {"id": "main", **account},
        *(
            {"id": f"a{i:03d}", "usdirect_conn_id": f"usdirect_a{i:03d}", "warehouse_schema": f"a{i:03d}"}
            | account
            for i in range(1, count)
        ),
    ]
    path = tmp_path / "usdirect.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture
def settings_reads(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts every read of a settings file and every template check, by file; empties the cache."""
    reads: Counter[str] = Counter()
    read, check = config_module.load_located_yaml, template_check.check_template_spec

    def counted_read(path: Any) -> Any:
        reads[str(path)] += 1
        return read(path)

    def counted_check(path: Any, kind: str) -> Any:
        reads[f"check:{path}"] += 1
        return check(path, kind)

    monkeypatch.setattr(config_module, "load_located_yaml", counted_read)
    monkeypatch.setattr(template_check, "check_template_spec", counted_check)
    config_module._load.cache_clear()
    yield reads
    config_module._load.cache_clear()


def _bag(dag_file: Path) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(dag_file))
    assert bag.import_errors == {}
    return bag


def test_200_accounts_one_settings_read_and_one_template_check_per_dag_file_parse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings_reads: Counter[str]
) -> None:
    settings = accounts_settings(tmp_path, 200)
    monkeypatch.setenv("USDIRECT_CONFIG", str(settings))

    bag = _bag(DAGS / "usdirect_send_orders.py")

    assert len(bag.dags) == 200
    assert settings_reads[str(settings)] == 1, settings_reads
    assert settings_reads[f"check:{REPO / 'include' / 'mappings' / 'orders.yaml'}"] == 1, settings_reads
    _bag(DAGS)  # all five files, 1,000 DAGs, in one process: the unchanged file is not read again
    assert settings_reads[str(settings)] == 1, settings_reads


def test_an_edited_settings_file_is_read_anew_on_the_next_parse_even_with_the_same_mtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings_reads: Counter[str]
) -> None:
    settings = accounts_settings(tmp_path, 3)
    monkeypatch.setenv("USDIRECT_CONFIG", str(settings))
    assert _bag(DAGS / "usdirect_get_invoices.py").dags["usdirect_get_invoices"].schedule == "0 6 * * *"
    before = settings.stat()

    # Saved within the file system's timestamp granularity (or restored by a deploy tool): same mtime.
    settings.write_text(settings.read_text().replace("schedule: 0 6 * * *", "schedule: 30 7 * * *"))
    os.utime(settings, ns=(before.st_atime_ns, before.st_mtime_ns))

    assert _bag(DAGS / "usdirect_get_invoices.py").dags["usdirect_get_invoices"].schedule == "30 7 * * *"
    assert settings_reads[str(settings)] == 2, settings_reads


def test_every_task_of_an_account_runs_in_that_accounts_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USDIRECT_CONFIG", str(accounts_settings(tmp_path, 3)))
    bag = _bag(DAGS)
    pools: dict[str, set[str]] = {}
    for dag in bag.dags.values():
        account = next(t.removeprefix("account:") for t in dag.tags if t.startswith("account:"))
        pools.setdefault(account, set()).update(task.pool for task in dag.tasks)
    # Tasks that call no API (checks, summaries) may run in default_pool; none uses another account's.
    assert {a: p - {"default_pool"} for a, p in pools.items()} == {
        "main": {"usdirect_main"},
        "a001": {"usdirect_a001"},
        "a002": {"usdirect_a002"},
    }
    assert len(bag.dags) == 15


def test_dag_params_declare_draft_04_and_still_refuse_bad_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    from usdirect.dag_factory import PARAM_DRAFT

    monkeypatch.setenv("USDIRECT_CONFIG", str(accounts_settings(tmp_path, 2)))
    dag = _bag(DAGS / "usdirect_send_orders.py").dags["usdirect_a001_send_orders"]
    # Checking a draft-04 schema costs a fifth of a draft 2020-12 one (benchmarks/bench_parse.py).
    assert {p.schema["$schema"] for p in dag.params.values()} == {PARAM_DRAFT}
    assert dag.params.validate() == {"dry_run": False, "po_numbers": [], "confirm": False, "max_orders": None}
    for name, bad in (("max_orders", 0), ("po_numbers", [7]), ("dry_run", "yes")):
        with pytest.raises(ParamValidationError):
            dag.params.get_param(name).resolve(bad)
    assert dag.params.get_param("max_orders").resolve(3) == 3


def test_two_accounts_on_one_warehouse_connection_and_schema_are_refused(tmp_path: Path) -> None:
    settings = accounts_settings(tmp_path, 3)
    text = settings.read_text()
    settings.write_text(text.replace("  warehouse_schema: a002\n", ""))
    line = settings.read_text().splitlines().index("- id: a002") + 1

    with pytest.raises(ConfigError) as caught:
        load_config(settings)

    message = str(caught.value)
    assert message.startswith(f"{settings}:{line}: ")
    assert (
        "account 'a002' shares warehouse connection 'usdirect_warehouse' and its default schema with "
        "account 'main': order, shipment and invoice tables are not keyed by account" in message
    )
    fix = "give account 'a002' its own `warehouse_schema:` (e.g. usdirect_a002) or its own warehouse_conn_id"
    assert f"Fix: {fix}" in message


def test_an_own_warehouse_schema_or_connection_keeps_accounts_apart(tmp_path: Path) -> None:
    settings = accounts_settings(tmp_path, 3)
    raw = yaml.safe_load(settings.read_text())
    raw["warehouse"] = {"schema": "usdirect"}
    raw["accounts"][2] = {"id": "a002", "warehouse_conn_id": "usdirect_warehouse_a002"}
    settings.write_text(yaml.safe_dump(raw, sort_keys=False))

    cfg = load_config(settings)

    assert [cfg.warehouse_schema(a) for a in cfg.accounts] == ["usdirect", "a001", "usdirect"]


def _hook_limiter(conn_id: str) -> Any:
    from usdirect.hooks.usdirect import UsDirectHook

    hook = UsDirectHook(conn_id)
    try:
        return hook.client.limiter
    finally:
        hook.close()


def _pacing_connections(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Three accounts' connections: east and east_b on one API Token, west on another."""
    tokens = {"usdirect_east": "tok-east-1", "usdirect_west": "tok-west-2", "usdirect_east_b": "tok-east-1"}
    for conn_id, token in tokens.items():
        conn = {
            "conn_type": "usdirect",
            "host": "http://127.0.0.1:9",
            "password": token,
            "extra": {"rate_limit": 5},
        }
        monkeypatch.setenv(*conn_env_var(conn_id, conn))
    return tokens


def _burst_seconds(*limiters: Any, requests: int = 6) -> list[float]:
    """Each limiter, in its own thread at the same time, paces ``requests`` calls; seconds each took."""
    took: list[float] = []

    def burst(limiter: Any) -> None:
        start = time.monotonic()
        for _ in range(requests):
            limiter.acquire()
        took.append(time.monotonic() - start)

    threads = [threading.Thread(target=burst, args=(limiter,)) for limiter in limiters]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return took


def test_accounts_on_different_tokens_pace_apart_and_accounts_on_one_token_share(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("USDIRECT_CONFIG", str(REPO / "include" / "usdirect.yaml"))  # backend: process
    _pacing_connections(monkeypatch)
    monkeypatch.setattr(ratelimit, "_registry", {})
    east, west, east_b = (_hook_limiter(c) for c in ("usdirect_east", "usdirect_west", "usdirect_east_b"))
    assert east is east_b and east is not west

    # 6 requests at 5/s (paced at 90%) take about 1.1 s; 12 on one token about 2.4 s.
    apart = _burst_seconds(east, west)
    assert max(apart) < 1.8, apart  # neither account waited for the other
    monkeypatch.setattr(ratelimit, "_registry", {})
    shared = _burst_seconds(_hook_limiter("usdirect_east"), _hook_limiter("usdirect_east_b"))
    assert max(shared) > 2.1, shared  # one token: one schedule, whichever account's connection uses it


@pytest.mark.usefixtures("shared_pacing")  # rate_limit.backend: redis (database 11); skips without Redis
def test_with_redis_pacing_accounts_keep_one_schedule_per_token_across_processes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _pacing_connections(monkeypatch)
    east, west, east_b = (_hook_limiter(c) for c in ("usdirect_east", "usdirect_west", "usdirect_east_b"))
    assert isinstance(east, ratelimit_redis.SharedRateLimiter)
    keys = {name: lim._keys[0] for name, lim in (("east", east), ("west", west), ("east_b", east_b))}
    assert keys["east"] == keys["east_b"] != keys["west"], keys
    assert not any("tok-" in key for key in keys.values())  # Redis sees a hash, never the token

    apart = _burst_seconds(east, west)  # the shared schedule paces at 93%: 6 requests ~1.1 s
    assert max(apart) < 1.8, apart
    ratelimit._shared.clear()
    shared = _burst_seconds(_hook_limiter("usdirect_east"), _hook_limiter("usdirect_east_b"))
    assert max(shared) > 2.1, shared

"""One rate limit per token across processes: the Redis backend (settings ``rate_limit.backend: redis``).

Real Redis at 127.0.0.1:6379, database 11 (flushed before and after; no other database is
touched), real sandbox servers and real worker processes, as Celery workers would run them.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
import yaml

from benchmarks.bench_pacing import (
    REDIS_CONN_ID,
    run_processes,
    settings_file,
    summarise,
)
from sandbox.faults import FaultKind
from sandbox.runner import SandboxInfo
from tests.support.connections import conn_env_var
from tests.support.paths import REPO
from usdirect.domain.errors import PermanentError
from usdirect.hooks import ratelimit, ratelimit_redis
from usdirect.hooks.errors import ConnectionConfigError, RateLimitBackendError
from usdirect.settings.config import ConfigError, load_config

LIMIT = 5  # the sandbox's limit per API Token, and the hook's default rate
SECONDS = 12.0


def _use(sandbox: SandboxInfo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_USDIRECT_DEFAULT", json.dumps(sandbox.connections()["usdirect_default"]))


def test_four_processes_on_one_token_stay_within_the_limit_at_full_speed(
    shared_pacing: tuple[Path, str], sandbox_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = sandbox_factory(rate_limit=LIMIT)
    _use(sandbox, monkeypatch)

    figures = summarise(run_processes(4, SECONDS), sandbox.stats())

    assert figures["http_429"] == 0, figures
    assert figures["peak_rps_server"] <= LIMIT, figures  # every 1 s window, as the server counts
    assert figures["req_per_s"] >= LIMIT * 0.9, figures  # throughput within 10% of the limit
    assert figures["req_per_s"] <= LIMIT, figures
    assert min(figures["per_process"]) >= figures["requests"] / 4 * 0.5, figures  # all four got turns


def test_retry_after_seen_by_one_process_holds_back_every_process(
    shared_pacing: tuple[Path, str], sandbox_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The 21st call (after the four warm-up calls, about 3.5 s into the run) gets 429 Retry-After: 3.
    sandbox = sandbox_factory(
        rate_limit=LIMIT, faults=[f"GET /v1/ping {FaultKind.HTTP_429} times=1 skip=20 retry_after=3"]
    )
    _use(sandbox, monkeypatch)

    figures = summarise(run_processes(4, 9.0), sandbox.stats())

    outcomes = sandbox.stats()["requests"]["GET /v1/ping"]
    assert outcomes.get(FaultKind.HTTP_429.counter) == 1, outcomes
    assert figures["http_429"] == 1, figures  # only the injected one: nobody ran into the hold
    # No process sent anything while the hold lasted (the others would go on every ~0.2 s).
    assert figures["max_gap_s"] >= 2.7, figures


def test_the_token_never_reaches_redis_and_keys_expire(shared_pacing: tuple[Path, str], redis_db) -> None:
    token = "ud_s3cr3t-token-value-for-redis"
    limiter = ratelimit.limiter_for("usdirect", token, 50.0)
    assert isinstance(limiter, ratelimit_redis.SharedRateLimiter)
    assert ratelimit.limiter_for("usdirect", token, 50.0) is limiter
    limiter.acquire()
    limiter.acquire()
    limiter.defer(0.01)

    keys = sorted(redis_db.keys("*"))  # the schedule (hash) and the recent send times (sorted set)
    assert len(keys) == 2 and all(k.startswith(b"usdirect:ratelimit:{") for k in keys), keys
    schedule, sent = keys
    stored = [
        *keys,
        *redis_db.hgetall(schedule).keys(),
        *redis_db.hgetall(schedule).values(),
        *redis_db.zrange(sent, 0, -1),
    ]
    assert not any(b"s3cr3t" in part for part in stored), stored
    assert redis_db.zcard(sent) == 2
    assert all(0 < redis_db.pttl(k) <= 62_000 for k in keys)


def test_a_late_waker_cannot_bunch_with_the_sends_after_it(shared_pacing: tuple[Path, str]) -> None:
    # Five paced sends; then a caller whose slot came long ago (it slept too long on a busy
    # machine) tries to send at once: the send-time guard makes it wait out the window instead.
    limiter = ratelimit.limiter_for("usdirect", "ud_token-of-a-late-waker", 5.0)
    assert isinstance(limiter, ratelimit_redis.SharedRateLimiter)
    first = time.monotonic()
    for _ in range(5):
        limiter.acquire()

    verdict, seconds = limiter._run(limiter._confirm, "5", f"{limiter._span:.6f}", "late-waker")
    assert verdict == b"wait"
    assert 0 < float(seconds) <= limiter._span - (time.monotonic() - first) + 0.05
    assert 1.0 < limiter._span < 1.0 / 0.93  # above the server's window, below the paced spacing


def test_an_unreachable_redis_fails_the_call_naming_the_connection_and_the_fix(
    shared_pacing: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{REDIS_CONN_ID.upper()}",
        json.dumps({"conn_type": "redis", "host": "127.0.0.1", "port": port, "extra": {"db": 11}}),
    )
    monkeypatch.setattr(ratelimit_redis, "UNREACHABLE_BUDGET", 0.5)

    limiter = ratelimit.limiter_for("usdirect", "ud_token-of-an-unreachable-redis", 5.0)
    with pytest.raises(RateLimitBackendError) as caught:
        limiter.acquire()

    message = str(caught.value)
    assert f"connection '{REDIS_CONN_ID}'" in message
    assert f"rate_limit.backend: process in {shared_pacing[0]}" in message  # the settings file in use
    assert not isinstance(caught.value, PermanentError)  # Redis coming back is worth the task's retries


def test_a_missing_redis_connection_is_a_permanent_error_naming_it(
    shared_pacing: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(f"AIRFLOW_CONN_{REDIS_CONN_ID.upper()}")

    missing = f"Redis connection '{REDIS_CONN_ID}'.*does not exist"
    with pytest.raises(ConnectionConfigError, match=missing) as e:
        ratelimit.limiter_for("usdirect", "ud_token-without-redis-connection", 5.0)
    assert str(shared_pacing[0]) in str(e.value)
    assert isinstance(e.value, PermanentError)


def test_pacing_is_per_process_unless_the_settings_say_redis(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("USDIRECT_CONFIG", str(settings_file(tmp_path, "process")))
    assert isinstance(ratelimit.limiter_for("usdirect", "ud_token-paced-locally", 5.0), ratelimit.RateLimiter)

    bad = settings_file(tmp_path, "redis")
    bad.write_text(bad.read_text(encoding="utf-8").replace("backend: redis", "backend: memcached"))
    with pytest.raises(ConfigError, match=r"rate_limit\.backend: .*'process' or 'redis'"):
        load_config(bad)


def test_an_unreachable_redis_is_diagnosed_as_setup_with_the_fix() -> None:
    from usdirect.notifications.troubleshooting import diagnose
    from usdirect.settings.config import Account

    error = RateLimitBackendError(
        f"the shared rate limit's Redis (connection '{REDIS_CONN_ID}') did not answer for 15 s (...)"
    )
    found = diagnose(error, Account(id="main"), "send_orders")

    assert found.section == "setup"
    assert "Redis that paces every worker's API calls did not answer" in found.cause
    assert REDIS_CONN_ID in found.cause
    assert "rate_limit.redis_conn_id" in found.fix


def _dag_settings(tmp_path: Path) -> Path:
    path = settings_file(tmp_path, "redis")
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw["alerts"] = {"on_failure": False, "needs_attention": False, "channels": []}
    raw["staging"] = {"url": str(tmp_path / "staging")}
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def test_a_dag_run_paces_through_redis_and_a_missing_redis_connection_fails_it_without_retries(
    shared_pacing: tuple[Path, str],
    redis_db,
    airflow_db: Path,
    sandbox_factory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    sandbox = sandbox_factory(rate_limit=LIMIT)
    for conn_id, conn in sandbox.connections().items():
        monkeypatch.setenv(*conn_env_var(conn_id, conn))
    warehouse = {"conn_type": "duckdb", "host": str(tmp_path / "w.duckdb")}
    monkeypatch.setenv(*conn_env_var("usdirect_warehouse", warehouse))
    monkeypatch.setenv("USDIRECT_CONFIG", str(_dag_settings(tmp_path)))
    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}

    run = bag.get_dag("usdirect_get_shipments").test()
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert states["fetch_shipments"] == "success", states
    assert redis_db.keys("usdirect:ratelimit:*"), "the task's API calls did not use the shared schedule"

    monkeypatch.delenv(f"AIRFLOW_CONN_{REDIS_CONN_ID.upper()}")
    ratelimit._shared.clear()
    ratelimit_redis.reset_clients()
    run = bag.get_dag("usdirect_get_shipments").test()
    (fetch,) = [ti for ti in run.get_task_instances() if ti.task_id == "fetch_shipments"]
    assert str(fetch.state) == "failed"  # not up_for_retry: a missing connection is not transient

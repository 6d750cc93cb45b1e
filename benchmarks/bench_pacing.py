"""Pacing benchmark: N processes call the sandbox on one API token, paced per process or through Redis.

Each process is a separate interpreter (as a Celery worker's task is) with its own UsDirectHook on
the same token; all start together and call ``GET /v1/ping`` for a fixed time. The sandbox
measures the peak number of requests that arrived in any 1 s window for the token and counts 429s;
the processes record when each call completed, which gives the throughput.

Target (issue 13): with the Redis backend, peak <= the limit in every 1 s window, zero 429s and
throughput within 10% of the limit. The per-process backend is run next to it for comparison.
Needs Redis at 127.0.0.1:6379 (database 11 is flushed). Run alone with:
.venv/bin/python benchmarks/bench_pacing.py [PROCESSES] [SECONDS]
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
SETTINGS = REPO / "include" / "usdirect.yaml"
REDIS_URL_DB = ("127.0.0.1", 6379, 11)
REDIS_CONN_ID = "usdirect_pacing_redis"
RATE = 5  # the sandbox's and the hook's default: 5 requests/s per API Token


def settings_file(folder: Path, backend: str, redis_conn_id: str = REDIS_CONN_ID) -> Path:
    """A copy of include/usdirect.yaml with ``rate_limit`` set (relative paths made absolute)."""
    raw = yaml.safe_load(SETTINGS.read_text(encoding="utf-8"))
    for operation in raw.get("operations", {}).values():
        if isinstance(operation, dict) and operation.get("template"):
            operation["template"] = str((SETTINGS.parent / operation["template"]).resolve())
    for account in raw.get("accounts", []):
        for name, rel in dict(account.get("templates") or {}).items():
            account["templates"][name] = str((SETTINGS.parent / rel).resolve())
    raw["rate_limit"] = {"backend": backend, "redis_conn_id": redis_conn_id}
    path = folder / f"usdirect-{backend}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def redis_connection(db: int = REDIS_URL_DB[2]) -> str:
    """The Airflow connection (JSON form) of the benchmark's Redis database."""
    host, port, _ = REDIS_URL_DB
    return json.dumps({"conn_type": "redis", "host": host, "port": port, "extra": {"db": db}})


def _worker(seconds: float, barrier: Any, results: Any) -> None:
    """One process: a hook on the shared token, calling GET /v1/ping until ``seconds`` are up."""
    from usdirect.hooks.usdirect import UsDirectHook

    stamps: list[float] = []
    try:
        with UsDirectHook("usdirect_default") as hook:
            hook.api("GET", "/v1/ping")  # connection, limiter and Redis client ready before the start
            barrier.wait(timeout=300)
            deadline = time.time() + seconds
            while time.time() < deadline:
                hook.api("GET", "/v1/ping")
                stamps.append(time.time())
        results.put({"pid": os.getpid(), "stamps": stamps})
    except Exception as exc:  # reported to the parent, which fails with it
        results.put({"pid": os.getpid(), "error": f"{type(exc).__name__}: {exc}"})


def run_processes(processes: int, seconds: float) -> list[dict[str, Any]]:
    """Start ``processes`` fresh interpreters (environment as now) and return what each recorded."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes)
    results = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(seconds, barrier, results)) for _ in range(processes)]
    for proc in procs:
        proc.start()
    try:
        got = [results.get(timeout=300 + seconds) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    errors = [g["error"] for g in got if "error" in g]
    if errors:
        raise RuntimeError(f"pacing worker failed: {errors[0]}")
    return got


def summarise(workers: list[dict[str, Any]], stats: dict[str, Any]) -> dict[str, Any]:
    """Throughput from the processes' stamps; peak and 429s as the sandbox saw them."""
    stamps = sorted(s for w in workers for s in w["stamps"])
    span = stamps[-1] - stamps[0] if len(stamps) > 1 else 0.0
    outcomes = stats["requests"].get("GET /v1/ping", {})
    client_peak = max(
        (sum(1 for s in stamps[i:] if s < first + 1.0) for i, first in enumerate(stamps)), default=0
    )
    return {
        "requests": len(stamps),
        "seconds": round(span, 2),
        "req_per_s": round((len(stamps) - 1) / span, 3) if span else 0.0,
        "peak_rps_server": stats["peak_rps"].get("api_token", 0),
        "peak_rps_client": client_peak,
        "http_429": outcomes.get("429", 0),
        "per_process": [len(w["stamps"]) for w in workers],
        "max_gap_s": round(max((b - a for a, b in itertools.pairwise(stamps)), default=0.0), 3),
    }


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def flush_redis_db() -> None:
    """Empty the benchmark's own Redis database (11); no other database is touched."""
    import redis

    host, port, db = REDIS_URL_DB
    try:
        with redis.Redis(host=host, port=port, db=db, socket_connect_timeout=2) as client:
            client.flushdb()
    except redis.ConnectionError as exc:
        raise RuntimeError(
            f"the pacing benchmark needs Redis at {host}:{port} ({exc}): start it with "
            f"redis-server --port {port}, or leave this suite out (--only mapping --only inventory)"
        ) from None


def run(processes: int = 4, seconds: float = 15.0) -> dict[str, Any]:
    """Both backends, one after the other, against one sandbox (stats reset in between)."""
    from sandbox.runner import start_sandbox

    results = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-pacing-") as tmp,
        start_sandbox(catalog_size=2000, seed=42, feed_limit=0, rate_limit=RATE) as sandbox,
    ):
        conns = sandbox.connections()
        env = {
            "AIRFLOW_HOME": os.environ.get("AIRFLOW_HOME") or tmp,
            "AIRFLOW_CONN_USDIRECT_DEFAULT": json.dumps(conns["usdirect_default"]),
            f"AIRFLOW_CONN_{REDIS_CONN_ID.upper()}": redis_connection(),
        }
        for backend in ("process", "redis"):
            flush_redis_db()
            sandbox.reset()
            env["USDIRECT_CONFIG"] = str(settings_file(Path(tmp), backend))
            with environment(env):
                workers = run_processes(processes, seconds)
            figures = summarise(workers, sandbox.stats())
            results.append({"name": f"{processes} processes, one token, {backend} pacing", **figures})
        flush_redis_db()
    return {
        "results": results,
        "notes": [
            f"limit {RATE} req/s per token (sandbox sliding 1 s window); each process calls GET /v1/ping "
            f"for {seconds:g} s; req_per_s from the processes' completion times",
            "peak_rps_server counts every arrival, 429s included; target with redis: peak <= limit, "
            f"0 x 429, req_per_s >= {RATE * 0.9:g}",
        ],
    }


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    args = [float(a) for a in sys.argv[1:]]
    print(json.dumps(run(int(args[0]) if args else 4, args[1] if len(args) > 1 else 15.0), indent=2))

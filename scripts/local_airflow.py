"""`make airflow`: a complete local Airflow for the US Direct DAGs, in this folder.

Starts the sandbox US Direct and platform servers, a local alert receiver that prints every alert,
creates the connections (usdirect_default, flxpoint_default, usdirect_warehouse as a DuckDB file,
usdirect_alerts) and one pool per account through the Airflow CLI, then runs `airflow standalone`
(scheduler, DAG processor, API server, triggerer) with AIRFLOW_HOME=.airflow. Ctrl-C stops it all.

The helpers here are also what the end-to-end test uses to prepare its own Airflow home, so the
demo path and the tested path are the same code.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [p for p in (str(REPO), str(REPO / "plugins")) if p not in sys.path]

from usdirect.config import Config, load_config  # noqa: E402  (after the path set-up above)

PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"


def airflow_env(home: Path, api_port: int, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for every Airflow process of a project-local deployment rooted at ``home``."""
    bin_dir = str(Path(sys.executable).parent)  # `airflow standalone` starts `airflow ...` from PATH
    env = dict(os.environ)
    env.update(
        {
            "PATH": os.pathsep.join([bin_dir, env.get("PATH", "")]),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            # The Feed URL carries its key; Airflow masks extras only by name, and "feed_url" is not
            # one of its sensitive words, so the API and UI would show it in clear text.
            "AIRFLOW__CORE__SENSITIVE_VAR_CONN_NAMES": "feed_url",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": env.get("AIRFLOW__CORE__PARALLELISM", "8"),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__BASE_URL": f"http://localhost:{api_port}",
            "USDIRECT_CONFIG": env.get("USDIRECT_CONFIG") or str(REPO / "include" / "usdirect.yaml"),
        }
    )
    env.update(extra or {})
    return env


def airflow_cli(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run one `airflow` CLI command; its output is shown only when it fails (it may echo values)."""
    done = subprocess.run(
        [sys.executable, "-m", "airflow", *args], env=dict(env), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"airflow {args[0]} {args[1] if len(args) > 1 else ''} failed:\n{done.stderr[-3000:]}"
        )
    return done


def import_connections(env: Mapping[str, str], connections: Mapping[str, Mapping[str, Any]]) -> None:
    """Create or replace connections through `airflow connections import --overwrite`.

    The secrets go through a private temporary file (mode 0600, deleted at once) rather than the
    command line, where any local user could read them in the process list.
    """
    payload = {
        conn_id: {
            **conn,
            "extra": json.dumps(conn["extra"]) if isinstance(conn.get("extra"), dict) else conn.get("extra"),
        }
        for conn_id, conn in connections.items()
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", dir=env["AIRFLOW_HOME"], delete=True) as fh:
        os.chmod(fh.name, 0o600)
        json.dump(payload, fh)
        fh.flush()
        airflow_cli(env, "connections", "import", "--overwrite", fh.name)


def import_pools(env: Mapping[str, str], cfg: Config) -> dict[str, int]:
    """One pool per account (``usdirect_<id>``, ``pool_slots`` slots); returns name → slots."""
    pools = {cfg.pool(a): a.pool_slots for a in cfg.accounts}
    body = {
        name: {
            "slots": slots,
            "description": "US Direct API-calling tasks of one account",
            "include_deferred": False,
        }
        for name, slots in pools.items()
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", dir=env["AIRFLOW_HOME"], delete=True) as fh:
        json.dump(body, fh)
        fh.flush()
        airflow_cli(env, "pools", "import", fh.name)
    return pools


class _AlertPrinter(BaseHTTPRequestHandler):
    """Shows each alert POSTed by the HttpNotifier on the console and appends it to alerts.log."""

    log_file: Path

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            text = json.loads(body).get("text") or body.decode()
        except (ValueError, AttributeError):
            text = body.decode(errors="replace")
        banner = f"\n===== ALERT =====\n{text}\n=================\n"
        print(banner, flush=True)
        with self.log_file.open("a", encoding="utf-8") as fh:
            fh.write(banner)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


@contextmanager
def alert_receiver(log_file: Path) -> Iterator[int]:
    """A local webhook for the ``usdirect_alerts`` connection; yields its port."""
    handler = type("AlertPrinter", (_AlertPrinter,), {"log_file": log_file})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def demo_connections(
    sandbox_connections: Mapping[str, dict], home: Path, alerts_port: int
) -> dict[str, dict]:
    """The sandbox's connections plus the DuckDB warehouse and the alert webhook."""
    return {
        **sandbox_connections,
        "usdirect_warehouse": {"conn_type": "duckdb", "host": str(home / "warehouse.duckdb")},
        "usdirect_alerts": {"conn_type": "http", "host": "127.0.0.1", "port": alerts_port, "schema": "http"},
    }


def seed_orders(home: Path, sandbox: Any) -> int:
    """Write the platform's US Direct orders to the warehouse as pending, as a channel integration would."""
    from usdirect.targets.orders_warehouse import seed_demo_requests
    from usdirect.targets.sql import Warehouse

    name = "AIRFLOW_CONN_USDIRECT_WAREHOUSE"
    os.environ[name] = json.dumps({"conn_type": "duckdb", "host": str(home / "warehouse.duckdb")})
    try:
        return seed_demo_requests(
            Warehouse.from_conn_id("usdirect_warehouse"), sandbox.platform("fulfillment-requests")
        )
    finally:
        os.environ.pop(name, None)


def main() -> int:
    from sandbox.runner import start_sandbox

    home = Path(os.environ.get("AIRFLOW_HOME") or REPO / ".airflow").resolve()
    home.mkdir(parents=True, exist_ok=True)
    port = int(os.environ.get("AIRFLOW_PORT", "8080"))
    env = airflow_env(home, port)
    os.environ.update({"USDIRECT_CONFIG": env["USDIRECT_CONFIG"]})
    cfg = load_config()

    print(f"Starting the sandbox servers and preparing {home} ...", flush=True)
    with start_sandbox(seed=42, catalog_size=5000) as sandbox, alert_receiver(home / "alerts.log") as alerts:
        airflow_cli(env, "db", "migrate")
        import_connections(env, demo_connections(sandbox.connections(), home, alerts))
        pools = import_pools(env, cfg)
        orders = seed_orders(home, sandbox)
        print(
            "\n".join(
                [
                    "",
                    f"US Direct sandbox:   {sandbox.usdirect_url}  (admin API {sandbox.usdirect_admin})",
                    f"Platform sandbox:    {sandbox.flxpoint_url}  (admin API {sandbox.flxpoint_admin})",
                    "Connections:         usdirect_default, flxpoint_default, usdirect_warehouse "
                    f"({home / 'warehouse.duckdb'}), usdirect_alerts",
                    f"Orders:              {orders} pending fulfillment requests seeded into the warehouse; "
                    f"move the sandbox's clock to ship and invoice them: curl -X POST "
                    f"{sandbox.usdirect_admin}/clock/advance -H 'Content-Type: application/json' "
                    """-d '{"days": 2}'""",
                    f"Pools:               {', '.join(f'{n} ({s} slots)' for n, s in pools.items())}",
                    f"Alerts:              printed here and appended to {home / 'alerts.log'}",
                    f"Airflow UI:          http://localhost:{port}  (user admin; password in "
                    f"{home / PASSWORDS_FILE})",
                    "Stop everything with Ctrl-C.",
                    "",
                ]
            ),
            flush=True,
        )
        # Its own session, so that stopping it can reach every component and executor worker:
        # `airflow standalone` does not always wait for a scheduler that hangs on shutdown.
        standalone = subprocess.Popen(
            [sys.executable, "-m", "airflow", "standalone"], env=env, start_new_session=True
        )
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            return standalone.wait()
        except KeyboardInterrupt:
            print("\nStopping Airflow and the sandbox ...", flush=True)
            return stop_process_group(standalone)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def stop_process_group(proc: subprocess.Popen, grace: float = 30.0) -> int:
    """SIGINT to the process group led by ``proc``, then SIGTERM, then SIGKILL to what is left."""
    for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 10.0)):
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=wait)
        if proc.poll() is not None:
            break
    for sig in (signal.SIGTERM, signal.SIGKILL):  # orphaned components keep the group id
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
            time.sleep(2)
    return proc.wait()


if __name__ == "__main__":
    sys.exit(main())

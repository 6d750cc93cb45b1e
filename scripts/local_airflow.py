"""`make airflow`: a complete local Airflow for the US Direct DAGs, in this folder.

Starts the sandbox US Direct and platform servers, a local alert receiver that prints every alert,
creates the connections (usdirect_default, flxpoint_default, usdirect_warehouse as a DuckDB file,
usdirect_alerts) and one pool per account through the Airflow CLI, then runs `airflow standalone`
(scheduler, DAG processor, API server, triggerer) with AIRFLOW_HOME=.airflow. Ctrl-C stops it all.
The metadata DB is Postgres when it answers (see local_metadata.py); the sandbox saves its state
on exit and continues from it next time, so it keeps matching the warehouse (see local_state.py);
`--reset` (`make airflow-reset`) deletes all three. `.airflow/env.sh` sets up another shell.

The helpers here are also what the end-to-end test uses to prepare its own Airflow home, so the
demo path and the tested path are the same code.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
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

from scripts import local_bytecode, local_metadata  # noqa: E402  (after the path set-up above)
from scripts.local_state import InconsistentStateError, LocalState  # noqa: E402
from usdirect.settings.config import Config, load_config  # noqa: E402

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
    from usdirect.targets.warehouse.demo import seed_demo_requests
    from usdirect.targets.warehouse.sql import Warehouse

    name = "AIRFLOW_CONN_USDIRECT_WAREHOUSE"
    os.environ[name] = json.dumps({"conn_type": "duckdb", "host": str(home / "warehouse.duckdb")})
    try:
        return seed_demo_requests(
            Warehouse.from_conn_id("usdirect_warehouse"), sandbox.platform("fulfillment-requests")
        )
    finally:
        os.environ.pop(name, None)


SHELL_ENV = "env.sh"


def write_shell_env(home: Path, env: Mapping[str, str]) -> Path:
    """``home/env.sh``: `source` it to use this Airflow from another shell (CLI, connections test).

    The Airflow CLI needs the same AIRFLOW_HOME, metadata DB and settings as the running
    components; without them it would create an empty SQLite DB elsewhere and find no connection.
    """
    lines = [
        "# Written by `make airflow`: `source .airflow/env.sh` to use this Airflow from a shell.",
        f'export PATH={shlex.quote(str(Path(sys.executable).parent))}:"$PATH"',
    ]
    lines += [
        f"export {key}={shlex.quote(value)}"
        for key, value in sorted(env.items())
        if key.startswith("AIRFLOW") or key == "USDIRECT_CONFIG"
    ]
    path = home / SHELL_ENV
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)  # the metadata DB URL may carry a password
    return path


def prepare(
    env: Mapping[str, str], home: Path, sandbox: Any, alerts_port: int, cfg: Config
) -> dict[str, int]:
    """Migrate the metadata DB, (re)create connections and pools, write env.sh; returns the pools."""
    airflow_cli(env, "db", "migrate")
    import_connections(env, demo_connections(sandbox.connections(), home, alerts_port))
    pools = import_pools(env, cfg)
    write_shell_env(home, env)
    return pools


def reset(home: Path) -> int:
    """`make airflow-reset`: the sandbox state, the warehouse and the metadata DB, all together."""
    try:
        done = LocalState(home).reset()
    except InconsistentStateError as exc:
        print(f"make airflow-reset: {exc}", file=sys.stderr)
        return 1
    done += local_metadata.drop(home)
    print("\n".join(done or [f"nothing to reset in {home}"]))
    print("The next `make airflow` starts a new sandbox, warehouse and metadata DB.")
    return 0


def main(argv: list[str] | None = None) -> int:
    from sandbox.runner import start_sandbox

    args = _parse_args(argv)
    home = Path(os.environ.get("AIRFLOW_HOME") or REPO / ".airflow").resolve()
    home.mkdir(parents=True, exist_ok=True)
    if args.reset:
        return reset(home)
    state = LocalState(home)
    try:
        kept = state.check()
    except InconsistentStateError as exc:
        print(f"make airflow: {exc}", file=sys.stderr)
        return 1
    if kept == "fresh":  # a new sandbox and warehouse: no run history that refers to the old ones
        local_metadata.drop(home)
    metadata = local_metadata.choose(home)
    if metadata.warning:
        print(f"\nWARNING: {metadata.warning}\n", file=sys.stderr, flush=True)
    port = int(os.environ.get("AIRFLOW_PORT", "8080"))
    env = airflow_env(home, port, {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata.url})
    os.environ.update({"USDIRECT_CONFIG": env["USDIRECT_CONFIG"]})
    cfg = load_config()
    if site := local_bytecode.uncompiled_site():
        print(f"Compiling {site} to bytecode, once (installed without) ...", flush=True)
        local_bytecode.compile_site(site)

    print(f"Starting the sandbox servers and preparing {home} ...", flush=True)
    signal.signal(signal.SIGTERM, _interrupt)  # a stop by `kill` also lets the sandbox save
    # Ctrl-C (SIGINT) stops everything, also when this was started where SIGINT is ignored (a shell
    # starts background jobs so): Python would not raise KeyboardInterrupt, and the components,
    # inheriting the ignored signal, would not stop on it either.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with (
            start_sandbox(seed=42, catalog_size=5000, state_file=state.sandbox_state) as sandbox,
            alert_receiver(home / "alerts.log") as alerts,
        ):
            state.begin()
            return _serve(env, home, port, sandbox, alerts, cfg, metadata, kept, state)
    finally:
        if not state.end():  # the sandbox stopped without saving: the next start must not trust it
            print(
                f"WARNING: the sandbox did not save its state to {state.sandbox_state}; the next "
                "`make airflow` will ask for `make airflow-reset`",
                file=sys.stderr,
            )


def _serve(
    env: dict[str, str],
    home: Path,
    port: int,
    sandbox: Any,
    alerts: int,
    cfg: Config,
    metadata: local_metadata.MetadataDb,
    kept: str,
    state: LocalState,
) -> int:
    pools = prepare(env, home, sandbox, alerts, cfg)
    on_platform = [
        fr for fr in sandbox.platform("fulfillment-requests") if fr.get("sourceName") == "US Direct"
    ]
    added = seed_orders(home, sandbox)
    if kept == "restored":
        continued = (
            f"continued from the previous session (state saved {state.saved_at()}; sandbox clock at "
            f"{sandbox.clock_now().isoformat()})"
        )
        warehouse = f"{state.warehouse} kept from the previous session"
    else:
        continued = f"new (seed 42, clock at {sandbox.clock_now().isoformat()})"
        warehouse = f"{state.warehouse} (new)"
    print(
        "\n".join(
            [
                "",
                f"US Direct sandbox:   {sandbox.usdirect_url}  (admin API {sandbox.usdirect_admin})",
                f"Platform sandbox:    {sandbox.flxpoint_url}  (admin API {sandbox.flxpoint_admin})",
                f"Sandbox state:       {continued}; saved to {state.sandbox_state} on Ctrl-C",
                f"Warehouse:           {warehouse}",
                f"Metadata DB:         {metadata.label}"
                + ("  <- WARNING: SQLite, see above" if metadata.warning else ""),
                "Connections:         usdirect_default, flxpoint_default, usdirect_warehouse, "
                "usdirect_alerts (re-created with this sandbox's URLs and tokens)",
                f"Orders:              {len(on_platform)} US Direct fulfillment requests on the platform: "
                f"{added} new seeded into the warehouse as pending, {len(on_platform) - added} already "
                f"there; move the sandbox's clock to ship and invoice them: curl -X POST "
                f"{sandbox.usdirect_admin}/clock/advance -H 'Content-Type: application/json' "
                """-d '{"days": 2}'""",
                f"Pools:               {', '.join(f'{n} ({s} slots)' for n, s in pools.items())}",
                f"Alerts:              printed here and appended to {home / 'alerts.log'}",
                f"Airflow UI:          http://localhost:{port}  (user admin; password in "
                f"{home / PASSWORDS_FILE})",
                f"Airflow CLI:         in another shell: source {home / SHELL_ENV} && airflow connections "
                "test usdirect_default",
                "Stop everything with Ctrl-C (the sandbox saves its state); `make airflow-reset` starts "
                "sandbox, warehouse and metadata DB over.",
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
    try:
        return standalone.wait()
    except KeyboardInterrupt:
        print("\nStopping Airflow and the sandbox ...", flush=True)
        return stop_process_group(standalone)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/local_airflow.py", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--reset",
        action="store_true",
        help="delete the sandbox state, the warehouse and the metadata DB (`make airflow-reset`), then exit",
    )
    return parser.parse_args(argv)


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

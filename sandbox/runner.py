"""Start the sandbox as a child process and talk to its admin API: `start_sandbox(**options)`."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from sandbox.faults import server_for

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class SandboxInfo:
    """URLs and credentials of a running sandbox (secrets kept out of repr) plus admin helpers."""

    usdirect_url: str
    flxpoint_url: str
    feed_url: str = field(repr=False)
    api_token: str = field(repr=False)
    reseller_token: str = field(repr=False)
    platform_token: str = field(repr=False)
    usdirect_admin: str
    flxpoint_admin: str
    readonly_api_token: str = field(repr=False)
    other_reseller_token: str = field(repr=False)

    def connections(self) -> dict[str, dict]:
        """Airflow connections (JSON form) for usdirect_default and flxpoint_default."""
        return {
            "usdirect_default": {
                "conn_type": "usdirect",
                "host": self.usdirect_url,
                "password": self.api_token,
                "extra": {"feed_url": self.feed_url, "reseller_token": self.reseller_token},
            },
            "flxpoint_default": {
                "conn_type": "flxpoint",
                "host": self.flxpoint_url,
                "password": self.platform_token,
            },
        }

    # --- admin API --------------------------------------------------------------------------
    def _admin(self, server: str, method: str, path: str, body: Any = None) -> Any:
        base = self.usdirect_admin if server == "usdirect" else self.flxpoint_admin
        response = httpx.request(method, f"{base}/{path}", json=body, timeout=120)
        response.raise_for_status()
        return response.json()

    def stats(self, server: str = "usdirect") -> dict:
        """{"requests": {"GET /v1/ping": {"200": 3, "fault:reset": 1}}, "peak_rps": {"api_token": 5}}."""
        return self._admin(server, "GET", "stats")

    def set_faults(self, rules: list[dict], server: str | None = None) -> None:
        """Replace the fault rules (dicts with endpoint, kind and options) on the server(s) they target."""
        for name in ("usdirect", "flxpoint"):
            if server in (None, name):
                mine = [r for r in rules if server is not None or name in server_for(r["endpoint"])]
                if server is not None or mine:
                    self._admin(name, "POST", "faults", {"rules": mine})

    def clear_faults(self) -> None:
        for name in ("usdirect", "flxpoint"):
            self._admin(name, "DELETE", "faults")

    def advance_clock(self, hours: float = 0, days: float = 0) -> dict:
        """Move simulated time; orders progress through processing, shipping, invoicing, payment."""
        return self._admin("usdirect", "POST", "clock/advance", {"hours": hours, "days": days})

    def clock_now(self) -> datetime:
        return datetime.fromisoformat(self._admin("usdirect", "GET", "clock")["now"].replace("Z", "+00:00"))

    def creation_counts(self) -> dict[str, dict[str, int]]:
        return self._admin("usdirect", "GET", "orders/creation-counts")

    def cancel_order(self, po_number: str) -> dict:
        """Cancel an accepted order that has not fully shipped (US Direct cancelled it); the order."""
        return self._admin("usdirect", "POST", f"orders/{po_number}/cancel")

    def next_catalog_version(self, **shares: float) -> dict:
        """Switch feed and /v1/inventory to the next version (shares: price, quantity, new, removed)."""
        return self._admin("usdirect", "POST", "catalog/next-version", shares)

    def corrupt_prices(self, count: int, new: int = 0) -> dict[str, list[str]]:
        """Switch to a version where `count` SKUs per kind have broken prices (cost x0.01, cost x10,
        MAP above MSRP) and `new` new SKUs a MAP above their MSRP; their SKUs per kind."""
        return self._admin("usdirect", "POST", "catalog/corrupt-prices", {"count": count, "new": new})["skus"]

    def touch_skus(self, skus: list[str]) -> int:
        """Change the quantity of these SKUs now (their updated_at moves past every other row)."""
        return self._admin("usdirect", "POST", "catalog/touch", {"skus": skus})["touched"]

    def set_feed_mode(self, mode: str, share: float | None = None) -> dict:
        """ "normal", "empty" (header only) or "short" (first `share` of the rows)."""
        return self._admin("usdirect", "POST", "catalog/feed-mode", {"mode": mode, "share": share})

    def catalog_truth(self) -> dict:
        """{"version", "feed_mode", "rows": [feed rows, cost plain, quantity int], "dirty_rows": [...]}."""
        return self._admin("usdirect", "GET", "catalog/truth")

    def platform(self, kind: str) -> list[dict]:
        """Platform records: "variants", "parents", "fulfillment-requests", "shipments", "source-invoices"."""
        data = self._admin("flxpoint", "GET", f"platform/{kind}")
        return next(iter(data.values()))

    def seed_fulfillment_requests(
        self, count: int | None = None, requests: list[dict] | None = None
    ) -> list[dict]:
        body = {"count": count} if requests is None else {"fulfillmentRequests": requests}
        return self._admin("flxpoint", "POST", "platform/fulfillment-requests", body)["fulfillmentRequests"]

    def reset(self) -> None:
        """Back to the state right after start (catalog, orders, platform, clock, faults, stats)."""
        self._admin("usdirect", "POST", "reset")


def _argv(options: dict[str, Any]) -> list[str]:
    argv: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if key == "bad_frs":
            argv += [] if value else ["--no-bad-frs"]
        elif key == "faults":
            for spec in value:
                argv += ["--fault", spec]
        elif isinstance(value, bool):
            argv += [flag] if value else []
        elif isinstance(value, datetime):
            argv += [flag, value.isoformat()]
        elif value is not None:
            argv += [flag, str(value)]
    return argv


@contextmanager
def start_sandbox(startup_timeout: float = 120.0, **options: Any) -> Iterator[SandboxInfo]:
    """Run `python -m sandbox` with these options (CLI flags as keywords, `faults=[spec, ...]`).

    Yields once the servers accept connections; stops the process on exit.
    """
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    }
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sandbox", *_argv(options)],
            stdout=subprocess.PIPE,
            stderr=errors,
            env=env,
            cwd=REPO,
        )
        try:
            yield _read_announcement(proc, errors, startup_timeout)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            assert proc.stdout is not None
            proc.stdout.close()


def _read_announcement(proc: subprocess.Popen, errors: Any, timeout: float) -> SandboxInfo:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            if line:
                data = json.loads(line)
                return SandboxInfo(**{f.name: data[f.name] for f in fields(SandboxInfo)})
        if proc.poll() is not None:
            break
    errors.seek(0)
    tail = errors.read()[-4000:].decode(errors="replace")
    raise RuntimeError(f"sandbox did not start (exit code {proc.poll()}):\n{tail}")

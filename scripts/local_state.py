"""What `make airflow` keeps across restarts, and the check that sandbox and warehouse still agree.

The sandbox servers hold their state in memory; `make airflow` starts them with ``--state-file`` so
that they save it on shutdown and continue from it on the next start. The warehouse file then
still matches what the sandbox knows (POs sent, shipments, invoices, catalog version). A session
marker, written at start and removed once the sandbox has saved, reveals a session that ended
without saving (killed, crashed): then the warehouse may hold POs the saved sandbox never saw, and
`make airflow` refuses to start until `make airflow-reset` starts both over.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path

WAREHOUSE = "warehouse.duckdb"
SANDBOX_STATE = "sandbox-state.pickle"
MARKER = "session.json"
RESET_FIX = "run `make airflow-reset` to start the sandbox, the warehouse and Airflow's metadata over"


class InconsistentStateError(RuntimeError):
    """The warehouse and the sandbox state in AIRFLOW_HOME do not belong together."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class LocalState:
    """The files of one `make airflow` home and what they say about the last session."""

    home: Path

    @property
    def warehouse(self) -> Path:
        return self.home / WAREHOUSE

    @property
    def sandbox_state(self) -> Path:
        return self.home / SANDBOX_STATE

    @property
    def marker(self) -> Path:
        return self.home / MARKER

    def running_pid(self) -> int | None:
        """The pid of a `make airflow` still running on this home, if any."""
        if not self.marker.exists():
            return None
        pid = int(json.loads(self.marker.read_text())["pid"])
        return pid if pid != os.getpid() and _alive(pid) else None

    def check(self) -> str:
        """``"fresh"`` (nothing kept) or ``"restored"`` (both kept); raises when they disagree."""
        if pid := self.running_pid():
            raise InconsistentStateError(
                f"`make airflow` is already running on {self.home} (pid {pid}): stop it (Ctrl-C) first"
            )
        if self.marker.exists():
            last = json.loads(self.marker.read_text())
            raise InconsistentStateError(
                f"the last `make airflow` (pid {last['pid']}, started {last['started_at']}) ended without "
                f"saving the sandbox's state, so {self.warehouse} may hold POs, shipments or inventory "
                f"the sandbox does not know: {RESET_FIX}"
            )
        has_warehouse, has_state = self.warehouse.exists(), self.sandbox_state.exists()
        if has_warehouse and not has_state:
            raise InconsistentStateError(
                f"{self.warehouse} exists but {self.sandbox_state} does not (written by an older version, "
                f"or deleted): a new sandbox would not know the warehouse's POs; {RESET_FIX}"
            )
        if has_state and not has_warehouse:
            raise InconsistentStateError(
                f"{self.sandbox_state} exists but {self.warehouse} does not (deleted?): the sandbox "
                f"holds orders the warehouse does not; {RESET_FIX}"
            )
        return "restored" if has_state else "fresh"

    def begin(self) -> None:
        """Mark this session as running (removed by :meth:`end` once the sandbox has saved)."""
        started = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
        self.marker.write_text(json.dumps({"pid": os.getpid(), "started_at": started}))

    def end(self) -> bool:
        """Clear the marker if the sandbox saved its state during this session; True if it did
        (or if no session was marked, i.e. nothing was started that could need saving)."""
        if not self.marker.exists():
            return True
        started = self.marker.stat().st_mtime
        saved = self.sandbox_state.exists() and self.sandbox_state.stat().st_mtime >= started
        if saved:
            self.marker.unlink(missing_ok=True)
        return saved

    def reset(self) -> list[str]:
        """Delete warehouse, sandbox state, marker and alert log; one line per file removed."""
        if pid := self.running_pid():
            raise InconsistentStateError(
                f"`make airflow` is running on {self.home} (pid {pid}): stop it (Ctrl-C) before resetting"
            )
        removed = []
        for name in (WAREHOUSE, f"{WAREHOUSE}.wal", SANDBOX_STATE, MARKER, "alerts.log"):
            path = self.home / name
            if path.exists():
                path.unlink()
                removed.append(f"removed {path}")
        return removed

    def saved_at(self) -> str:
        """When the kept sandbox state was saved (UTC, for the banner)."""
        mtime = self.sandbox_state.stat().st_mtime
        return dt.datetime.fromtimestamp(mtime, dt.UTC).replace(microsecond=0).isoformat()

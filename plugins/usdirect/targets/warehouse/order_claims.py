"""Per-PO claim locks: while one Send Orders run works on a PO, no other run touches it.

The ledger's compare-and-set claim (``orders_warehouse.claim_attempt``) stops two runs from both
claiming a ``pending`` PO. It cannot tell a PO left ``submitting`` by a dead worker (look it up,
then resend if US Direct never got it) from one that another run is sending right now (its POST
may not have reached US Direct yet, so a lookup answers 404). A lock held for as long as a run
works on a PO, and released by the operating system or the database when that run dies, tells
them apart: a run that cannot take the lock leaves the PO alone.

Postgres: session-level advisory locks on one connection the run keeps open (any host).
DuckDB: byte-range locks (``fcntl.lockf``) on a file next to the warehouse file; the embedded
warehouse lives on one machine, so every writer sees them. Within one process a registry keeps
two runs apart as well (byte-range locks are per process).
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from usdirect.domain.orders import ClaimLocks
from usdirect.targets.warehouse.sql import Warehouse

log = logging.getLogger(__name__)

_HELD: set[tuple[str, str]] = set()  # (lock scope, PO) held by any run of this process
_HELD_LOCK = threading.Lock()


class _ProcessLocks:
    """The in-process part, shared by both engines; ``_take``/``_give`` add the cross-process part."""

    def __init__(self, scope: str) -> None:
        self.scope = scope
        self.mine: set[str] = set()

    def acquire(self, po_number: str) -> bool:
        key = (self.scope, po_number)
        with _HELD_LOCK:
            if key in _HELD:
                return False
            _HELD.add(key)
        try:
            taken = self._take(po_number)
        except BaseException:
            self._forget(key)
            raise
        if taken:
            self.mine.add(po_number)
        else:
            self._forget(key)
        return taken

    def release(self, po_number: str) -> None:
        try:
            self._give(po_number)
        finally:
            self.mine.discard(po_number)
            self._forget((self.scope, po_number))

    def close(self) -> None:
        """Forget what this run still holds (closing the connection or file frees the rest)."""
        with _HELD_LOCK:
            _HELD.difference_update((self.scope, po) for po in self.mine)
        self.mine.clear()

    @staticmethod
    def _forget(key: tuple[str, str]) -> None:
        with _HELD_LOCK:
            _HELD.discard(key)

    def _take(self, po_number: str) -> bool:
        return True

    def _give(self, po_number: str) -> None:
        return None


class _PostgresLocks(_ProcessLocks):
    """Advisory locks keyed by schema and PO, on a connection that lives as long as the run."""

    def __init__(self, wh: Warehouse) -> None:
        super().__init__(f"postgres:{wh.conn_id}:{wh.schema or ''}")
        self._conn = wh.session_connection()
        self._conn_lock = threading.Lock()
        self._namespace = f"usdirect_send_orders:{wh.schema or ''}:"

    def _call(self, function: str, po_number: str) -> bool:
        with self._conn_lock:
            row = self._conn.execute(
                f"SELECT {function}(hashtextextended(%s, 0))", (self._namespace + po_number,)
            ).fetchone()
        return bool(row[0])

    def _take(self, po_number: str) -> bool:
        return self._call("pg_try_advisory_lock", po_number)

    def _give(self, po_number: str) -> None:
        self._call("pg_advisory_unlock", po_number)

    def close(self) -> None:
        super().close()
        self._conn.close()  # releases every advisory lock still held


class _FileLocks(_ProcessLocks):
    """One byte per PO (by CRC-32) in ``<warehouse file>.send_orders.lock``.

    POSIX drops every lock a process holds on a file when it closes *any* descriptor of it, so
    the runs of one process share one descriptor per file (reference counted).
    """

    _files: dict[Path, list[int]] = {}  # path -> [fd, users]

    def __init__(self, lock_file: Path) -> None:
        super().__init__(f"file:{lock_file}")
        self._path = lock_file
        with _HELD_LOCK:
            entry = self._files.get(lock_file)
            if entry is None:
                entry = self._files[lock_file] = [os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600), 0]
            entry[1] += 1
            self._fd = entry[0]

    def _take(self, po_number: str) -> bool:
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, zlib.crc32(po_number.encode()))
        except OSError:
            return False
        return True

    def _give(self, po_number: str) -> None:
        fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, zlib.crc32(po_number.encode()))

    def close(self) -> None:
        for po in list(self.mine):
            self.release(po)
        super().close()
        with _HELD_LOCK:
            entry = self._files[self._path]
            entry[1] -= 1
            if entry[1] == 0:
                os.close(entry[0])
                del self._files[self._path]


def _duckdb_file(wh: Warehouse) -> Path | None:
    from airflow.sdk import BaseHook

    host = BaseHook.get_connection(wh.conn_id).host or ""
    if not host or host.startswith(":memory:") or "://" in host or host.startswith("md:"):
        return None
    return Path(host).expanduser().resolve()


@contextmanager
def claim_locks(wh: Warehouse) -> Iterator[ClaimLocks]:
    """The run's claim locks on the ledger warehouse ``wh``; everything is released on exit."""
    locks: _ProcessLocks
    if wh.dialect == "postgres":
        locks = _PostgresLocks(wh)
    else:
        path = _duckdb_file(wh)
        if path is None:
            locks = _ProcessLocks(wh.conn_id)
        else:
            locks = _FileLocks(path.with_name(path.name + ".send_orders.lock"))
    try:
        yield locks
    finally:
        locks.close()

"""The DuckDB hook's "Opening DuckDB database" line, said once per database and process.

The provider logs it at INFO on every connection, and the warehouse opens one per transaction:
48 such lines in one Send Orders log, burying the lines that matter. A task runs in a process of
its own, so the first open of each database stays at INFO and the repeats go to DEBUG.
"""

from __future__ import annotations

import threading
from typing import Any

_OPENING = "Opening DuckDB database"
_announced: set[tuple[Any, ...]] = set()
_lock = threading.Lock()


class OpenedOnce:
    """Stands in for the hook's logger; every other line passes through unchanged."""

    def __init__(self, log: Any) -> None:
        self._log = log

    def info(self, msg: str, *args: Any, **kwargs: Any) -> None:
        if msg.startswith(_OPENING):
            with _lock:
                repeat = args in _announced
                _announced.add(args)
            if repeat:
                self._log.debug(msg, *args, **kwargs)
                return
        self._log.info(msg, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)


def quieten(hook: Any) -> None:
    """Route the DuckDB hook's log through :class:`OpenedOnce`."""
    hook._log = OpenedOnce(hook.log)

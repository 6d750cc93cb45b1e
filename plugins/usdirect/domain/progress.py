"""Progress of a long step in the task log: done/total, rate and ETA, at most every few seconds.

A step that takes minutes (feed download, mapping, warehouse load, platform publish, order
sending) would otherwise say nothing until it ends, or one line per batch. The interval is
Airflow's ``[usdirect] progress_interval_seconds`` (``AIRFLOW__USDIRECT__PROGRESS_INTERVAL_SECONDS``,
default 5); every step also ends with one line of what it did.
"""

from __future__ import annotations

import logging
import threading
import time
from types import TracebackType

DEFAULT_INTERVAL_S = 5.0

log = logging.getLogger(__name__)


def progress_interval() -> float:
    from airflow.sdk.configuration import conf

    return conf.getfloat("usdirect", "progress_interval_seconds", fallback=DEFAULT_INTERVAL_S)


class Progress:
    """Counts what a step has done (from any thread) and logs it now and then; use it as a context
    manager for the closing line, which a failed step leaves out (its error says more)."""

    def __init__(self, step: str, total: int | None, *, unit: str = "rows", interval: float | None = None):
        self.step = step
        self.total = total
        self.unit = unit
        self.interval = progress_interval() if interval is None else interval
        self.done = 0
        self._started = self._logged = time.monotonic()
        self._lock = threading.Lock()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            self.finish()

    def advance(self, n: int = 1) -> None:
        with self._lock:
            self.done += n
            now = time.monotonic()
            if now - self._logged < self.interval:
                return
            self._logged = now
            line = self._line(now)
        log.info("%s", line)

    def finish(self) -> None:
        elapsed = time.monotonic() - self._started
        log.info(
            "%s: %s %s done in %.1f s (%s %s/s)",
            self.step,
            f"{self.done:,}",
            self.unit,
            elapsed,
            f"{self.done / elapsed if elapsed > 0 else 0:,.0f}",
            self.unit,
        )

    def _line(self, now: float) -> str:
        elapsed = now - self._started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        line = f"{self.step}: {self.done:,}"
        if self.total:
            line += f"/{self.total:,} {self.unit} ({100 * self.done / self.total:.0f}%)"
        else:
            line += f" {self.unit}"
        line += f", {rate:,.0f} {self.unit}/s"
        if self.total and rate > 0:
            line += f", ETA {max(self.total - self.done, 0) / rate:.0f} s"
        return line

"""A StatsD server on a local UDP port, and Airflow's ``Stats`` pointed at it for a test.

The task runner initialises ``Stats`` from ``[metrics]`` when a task process starts; ``dag.test()``
runs tasks in the test's process without that step, so :meth:`StatsdListener.airflow_stats` does
it the same way (``get_stats_factory``) with ``statsd_on`` set, and puts the no-op back afterwards.
"""

from __future__ import annotations

import socket
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

PREFIX = "airflow"


class StatsdListener:
    """Collects the StatsD lines (``name:value|type``) sent to 127.0.0.1:``port``."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)

    def __enter__(self) -> StatsdListener:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sock.close()

    def _receive(self) -> None:
        """Until stopped and drained: what was sent before ``__exit__`` is all counted after it."""
        while True:
            try:
                data = self._sock.recv(65535)
            except TimeoutError:
                if self._stop.is_set():
                    return
                continue
            with self._lock:
                self.lines += data.decode().splitlines()

    def configure(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """``[metrics]`` of this process and its children: StatsD on, sent here, prefix ``airflow``."""
        for key, value in {
            "STATSD_ON": "True",
            "STATSD_HOST": "127.0.0.1",
            "STATSD_PORT": str(self.port),
        }.items():
            monkeypatch.setenv(f"AIRFLOW__METRICS__{key}", value)
        monkeypatch.setenv("AIRFLOW__METRICS__STATSD_PREFIX", PREFIX)

    @contextmanager
    def airflow_stats(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
        """:meth:`configure`, and ``Stats`` of this process set up from it (for in-process ``dag.test()``)."""
        from airflow.sdk._shared.observability.metrics import stats
        from airflow.sdk._shared.observability.metrics.base_stats_logger import NoStatsLogger
        from airflow.sdk.observability.metrics import stats_utils

        self.configure(monkeypatch)
        stats.initialize(factory=stats_utils.get_stats_factory(), export_legacy_names=False)
        try:
            yield
        finally:
            stats.initialize(factory=NoStatsLogger, export_legacy_names=True)

    def parsed(self) -> list[tuple[str, float, str]]:
        """(name without the prefix, value, type) of every line received so far."""
        with self._lock:
            lines = list(self.lines)
        out = []
        for line in lines:
            name, _, rest = line.partition(":")
            value, _, kind = rest.partition("|")
            out.append((name.removeprefix(f"{PREFIX}."), float(value), kind.split("|")[0]))
        return out

    def counters(self) -> dict[str, int]:
        totals: dict[str, int] = defaultdict(int)
        for name, value, kind in self.parsed():
            if kind == "c":
                totals[name] += int(value)
        return dict(totals)

    def timers(self) -> dict[str, list[float]]:
        out: dict[str, list[float]] = defaultdict(list)
        for name, value, kind in self.parsed():
            if kind == "ms":
                out[name].append(value)
        return dict(out)

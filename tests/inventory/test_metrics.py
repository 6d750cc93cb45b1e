"""Get Inventory's metrics reach a StatsD server, and its long steps report bounded progress."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import pytest

from sandbox.faults import FaultKind
from tests.support.inventory import Env, ok_count
from tests.support.statsd import StatsdListener

M = "usdirect.get_inventory"


class _Lines(logging.Handler):
    """The progress logger's messages, wherever Airflow's logging sends the rest of the run's log."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_get_inventory_counts_rows_publish_calls_and_429s_in_statsd(
    make_env: Callable[..., Env], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = make_env("duckdb", ["warehouse", "platform"], catalog_size=200)
    # Two 429s on the feed (Retry-After 0): two retries of US Direct, the third attempt goes through.
    env.sandbox.set_faults(
        [{"endpoint": "GET /feeds/*", "kind": FaultKind.HTTP_429, "times": 2, "retry_after": 0}],
        server="usdirect",
    )
    monkeypatch.setenv("AIRFLOW__USDIRECT__PROGRESS_INTERVAL_SECONDS", "0")  # every step's lines
    lines = _Lines()
    logging.getLogger("usdirect.domain.progress").addHandler(lines)
    try:
        with StatsdListener() as statsd, statsd.airflow_stats(monkeypatch):
            run = env.run("usdirect_get_inventory")
    finally:
        logging.getLogger("usdirect.domain.progress").removeHandler(lines)
    assert run.state == "success", env.task_states(run)
    counters, timers = statsd.counters(), statsd.timers()

    catalog = len(env.sandbox.catalog_truth()["rows"])
    assert catalog == 200
    assert counters[f"{M}.map_feed.rows_read"] == catalog
    assert counters[f"{M}.map_feed.rows_rejected"] == 0
    assert counters[f"{M}.load_inventory_warehouse.rows_changed"] == catalog  # a first load: all new
    assert counters["usdirect.http.usdirect.throttled"] == 2
    assert counters["usdirect.http.usdirect.retries"] == 2
    assert "usdirect.http.flxpoint.throttled" not in counters
    calls = env.platform_calls()
    sent = ok_count(calls, "PUT /inventory/variants") + ok_count(calls, "POST /inventory/parents")
    assert sent > 0 and counters["usdirect.platform.publish_calls"] == sent
    for task in ("fetch_feed", "map_feed", "load_inventory_warehouse", "publish_inventory_platform"):
        (ms,) = timers[f"{M}.{task}.duration"]
        assert 0 < ms < 600_000

    # Progress (interval 0: a line per chunk or call): done/total, rate and ETA, then a closing line.
    logged = lines.messages
    download = [line for line in logged if line.startswith("feed download: ")]
    assert download and all("(100%)" in line and "ETA 0 s" in line for line in download[:-1]), download
    assert " bytes done in " in download[-1]
    publish = [line for line in logged if line.startswith("platform publish: ")]
    assert re.search(r"platform publish: \d+/\d+ SKUs \(\d+%\), [\d,]+ SKUs/s, ETA \d+ s", publish[0])
    assert len(publish) == sent + 1 and " SKUs done in " in publish[-1]  # a line per call, then the end
    assert any(line.startswith(f"mapping: {catalog:,} feed rows done in ") for line in logged)

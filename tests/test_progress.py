"""Progress lines of a long step: bounded by the interval, with done/total, rate and ETA."""

from __future__ import annotations

import logging
import re
import threading
import time

import pytest

from usdirect.domain.progress import Progress


def test_a_step_logs_at_most_once_per_interval_from_any_thread(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="usdirect.domain.progress")
    started = time.monotonic()
    with Progress("order sending", 400, unit="orders", interval=0.1) as progress:

        def work() -> None:
            for _ in range(100):
                progress.advance()
                time.sleep(0.004)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    elapsed = time.monotonic() - started
    *lines, last = caplog.messages
    assert 1 <= len(lines) <= elapsed / 0.1 + 1  # ~400 advances, a handful of lines
    for line in lines:
        assert re.fullmatch(r"order sending: \d+/400 orders \(\d+%\), [\d,]+ orders/s, ETA \d+ s", line), line
    assert re.fullmatch(r"order sending: 400 orders done in [\d.]+ s \([\d,]+ orders/s\)", last), last


def test_the_interval_is_an_airflow_setting_and_a_failed_step_has_no_closing_line(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="usdirect.domain.progress")
    monkeypatch.setenv("AIRFLOW__USDIRECT__PROGRESS_INTERVAL_SECONDS", "3600")
    with pytest.raises(RuntimeError), Progress("mapping", None, unit="feed rows") as progress:
        assert progress.interval == 3600
        for _ in range(1000):
            progress.advance(10)
        raise RuntimeError("the step failed")
    assert caplog.messages == []  # no line within the hour, and no "done" for a failed step

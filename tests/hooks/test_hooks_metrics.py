"""Each service's 429s and retries reach a StatsD server under its own name."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.faults import FaultKind
from sandbox.runner import SandboxInfo, start_sandbox
from tests.support.statsd import StatsdListener
from usdirect.hooks.errors import RateLimitExhaustedError
from usdirect.hooks.flxpoint import FlxpointHook
from usdirect.hooks.usdirect import UsDirectHook

FAST_LIMITS = {"rate_limit": 50}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxInfo]:
    with start_sandbox(catalog_size=20, seed=5, rate_limit=50, platform_rate_limit=50) as info:
        yield info


def test_429s_and_retries_are_counted_per_service(
    sandbox: SandboxInfo, use_sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_sandbox(sandbox, usdirect=FAST_LIMITS, flxpoint={**FAST_LIMITS, "max_attempts": 3})
    sandbox.set_faults(
        [{"endpoint": "GET /v1/ping", "kind": FaultKind.HTTP_503, "times": 2}], server="usdirect"
    )
    sandbox.set_faults(
        [{"endpoint": "GET /inventory/variants", "kind": FaultKind.HTTP_429, "retry_after": 0}],
        server="flxpoint",
    )
    try:
        with StatsdListener() as statsd, statsd.airflow_stats(monkeypatch):
            UsDirectHook().ping()  # two 503s, then the answer
            with pytest.raises(RateLimitExhaustedError):
                FlxpointHook().variant_page(1)  # a 429 on each of its 3 attempts
    finally:
        sandbox.clear_faults()
    counters = statsd.counters()
    assert counters["usdirect.http.usdirect.retries"] == 2
    assert "usdirect.http.usdirect.throttled" not in counters  # a 503 is no rate limit
    assert counters["usdirect.http.flxpoint.throttled"] == 3  # the last attempt's 429 counts too
    assert counters["usdirect.http.flxpoint.retries"] == 2

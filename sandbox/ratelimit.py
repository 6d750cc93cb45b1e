"""Server-side request limits and request statistics (wall-clock time, not the simulated clock).

Both the limit and the peak-rate figure use the same sliding window, so a client whose peak rate
stays within the limit never sees a 429 from this server.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict, deque

from sandbox.common import ApiError


class SlidingWindowLimiter:
    """At most `limit` accepted requests per `window` seconds per key; `limit` 0 disables it."""

    def __init__(self, limit: int, window: float, what: str) -> None:
        self.limit, self.window, self.what = limit, window, what
        self._accepted: dict[str, deque[float]] = defaultdict(deque)

    def check(self, key: str) -> None:
        """Count one request for `key`, or raise a 429 ApiError with Retry-After."""
        if self.limit <= 0:
            return
        now = time.monotonic()
        accepted = self._accepted[key]
        while accepted and accepted[0] <= now - self.window:
            accepted.popleft()
        if len(accepted) >= self.limit:
            wait = max(1, math.ceil(accepted[0] + self.window - now))
            raise ApiError(
                429,
                "rate_limited",
                f"more than {self.limit} {self.what}; retry after {wait} s",
                headers={"Retry-After": str(wait)},
            )
        accepted.append(now)

    def reset(self) -> None:
        self._accepted.clear()


class Stats:
    """Request counts per endpoint and outcome, and the peak 1-second request rate per credential.

    Credentials are recorded under labels ("api_token", "platform_token", ...), never the secret.
    """

    def __init__(self) -> None:
        self.counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.peak: dict[str, int] = defaultdict(int)
        self._recent: dict[str, deque[float]] = defaultdict(deque)

    def count(self, endpoint: str, outcome: str) -> None:
        self.counts[endpoint][outcome] += 1

    def arrival(self, label: str) -> None:
        now = time.monotonic()
        recent = self._recent[label]
        recent.append(now)
        while recent[0] <= now - 1.0:
            recent.popleft()
        self.peak[label] = max(self.peak[label], len(recent))

    def snapshot(self) -> dict:
        return {
            "requests": {endpoint: dict(outcomes) for endpoint, outcomes in self.counts.items()},
            "peak_rps": dict(self.peak),
        }

    def reset(self) -> None:
        self.counts.clear()
        self.peak.clear()
        self._recent.clear()

"""Client-side rate limiting per API token, shared by every thread of a worker process.

The suppliers count requests per token, not per connection or per hook, so the limiter is
looked up by token: two hooks (or twenty threads) using the same token draw from one schedule.
Requests are paced evenly (one slot every ``1/rate`` seconds, no burst), which keeps any
one-second window at or under the server's limit, so a normal run sees no 429 at all.
The registry is keyed by a salted hash of the token; the token itself is never stored here.
"""

from __future__ import annotations

import hashlib
import threading
import time

# Pace slightly below the configured rate so clock skew and request jitter between client and
# server never push a one-second window over the server's limit.
_SAFETY = 0.9


class RateLimiter:
    """Even pacing: each ``acquire`` reserves the next free slot and sleeps until it."""

    def __init__(self, rate: float) -> None:
        self._lock = threading.Lock()
        self._next_slot = 0.0
        self._interval = 0.0
        self.rate = 0.0
        self.set_rate(rate)

    def set_rate(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError("rate limit must be a positive number of requests per second")
        with self._lock:
            self.rate = rate
            self._interval = 1.0 / (rate * _SAFETY)

    def acquire(self) -> float:
        """Block until this caller may send; returns the seconds waited."""
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self._interval
        wait = slot - now
        if wait > 0:
            time.sleep(wait)
        return wait

    def defer(self, seconds: float) -> None:
        """Hold every user of this token back for ``seconds`` (the server said Retry-After)."""
        with self._lock:
            self._next_slot = max(self._next_slot, time.monotonic() + seconds)


_registry: dict[str, RateLimiter] = {}
_registry_lock = threading.Lock()


def limiter_for(scope: str, token: str, rate: float) -> RateLimiter:
    """The process-wide limiter of ``token`` within ``scope`` (e.g. "usdirect"), set to ``rate``.

    The most recently configured rate wins, so changing the connection's ``rate_limit`` takes
    effect without restarting the worker.
    """
    key = hashlib.sha256(f"usdirect-airflow:{scope}:{token}".encode()).hexdigest()
    with _registry_lock:
        limiter = _registry.get(key)
        if limiter is None:
            limiter = _registry[key] = RateLimiter(rate)
            return limiter
    if limiter.rate != rate:
        limiter.set_rate(rate)
    return limiter

"""Client-side rate limiting per API token, shared by every thread of a worker process or, with
``rate_limit.backend: redis`` in the settings file, by every process of every worker.

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
from typing import Protocol

# Pace slightly below the configured rate so clock skew and request jitter between client and
# server never push a one-second window over the server's limit.
_SAFETY = 0.9
# The shared (Redis) schedule paces a little closer to the limit: it is there for throughput across
# workers (within 10% of the limit), and still leaves 75 ms of jitter per request before any
# 1-second window could hold one request too many (N requests take N / (rate * 0.93) > 1.075 s);
# its send-time guard (ratelimit_redis) keeps a worker that wakes late from using up that margin.
_SHARED_SAFETY = 0.93


class Pacer(Protocol):
    """What the HTTP client needs of a limiter, in-process or shared."""

    rate: float

    def acquire(self) -> float: ...

    def defer(self, seconds: float) -> None: ...

    def set_rate(self, rate: float) -> None: ...


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
_shared: dict[tuple[str, str], Pacer] = {}


def _key(scope: str, token: str) -> str:
    return hashlib.sha256(f"usdirect-airflow:{scope}:{token}".encode()).hexdigest()


def shared_backend() -> str | None:
    """The Redis connection id when the settings file says ``rate_limit.backend: redis``, else None.

    Without a settings file (a bare hook, Test Connection on a web server) pacing is per process.
    """
    from usdirect.settings.config import default_config_path, load_config

    if not default_config_path().exists():
        return None
    settings = load_config().rate_limit
    return settings.redis_conn_id if settings.backend == "redis" else None


def limiter_for(scope: str, token: str, rate: float) -> Pacer:
    """The limiter of ``token`` within ``scope`` (e.g. "usdirect"), set to ``rate``.

    Per process by default; shared through Redis when the settings file says so. The most
    recently configured rate wins, so changing the connection's ``rate_limit`` takes effect
    without restarting the worker.
    """
    key = _key(scope, token)
    conn_id = shared_backend()
    if conn_id is not None:
        return _shared_limiter(conn_id, key, rate)
    with _registry_lock:
        limiter = _registry.get(key)
        if limiter is None:
            limiter = _registry[key] = RateLimiter(rate)
            return limiter
    if limiter.rate != rate:
        limiter.set_rate(rate)
    return limiter


def _shared_limiter(conn_id: str, key: str, rate: float) -> Pacer:
    from usdirect.hooks.ratelimit_redis import shared_limiter

    with _registry_lock:
        limiter = _shared.get((conn_id, key))
        if limiter is None:
            limiter = _shared[conn_id, key] = shared_limiter(
                conn_id, f"usdirect:ratelimit:{{{key}}}", rate, _SHARED_SAFETY
            )
            return limiter
    if limiter.rate != rate:
        limiter.set_rate(rate)
    return limiter

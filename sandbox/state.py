"""Sandbox options and the in-memory state both servers share (rebuilt on start and on reset)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from sandbox.catalog import Catalog
from sandbox.common import SimClock
from sandbox.faults import FaultInjector, FaultRule, parse_rule, server_for
from sandbox.feed import FeedStore
from sandbox.orders import OrderBook
from sandbox.platform import Platform
from sandbox.ratelimit import SlidingWindowLimiter, Stats


@dataclass
class SandboxOptions:
    """What `python -m sandbox` flags and `start_sandbox(**options)` keywords configure."""

    data_dir: Path
    seed: int = 42
    catalog_size: int = 5000
    dirty: bool = False
    faults: list[str] = field(default_factory=list)
    feed_limit: int = 1
    rate_limit: int = 5
    platform_rate_limit: int = 2
    good_frs: int = 20
    bad_frs: bool = True
    start_time: datetime = field(
        default_factory=lambda: datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    )


@dataclass(frozen=True)
class Tokens:
    """Credentials of this run; the limited ones exist to exercise 403 (valid but not entitled)."""

    api_token: str = field(default_factory=lambda: "ud_" + secrets.token_urlsafe(24))
    readonly_api_token: str = field(default_factory=lambda: "udro_" + secrets.token_urlsafe(24))
    reseller_token: str = field(default_factory=lambda: "rs_" + secrets.token_urlsafe(24))
    other_reseller_token: str = field(default_factory=lambda: "rso_" + secrets.token_urlsafe(24))
    feed_key: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    platform_token: str = field(default_factory=lambda: "fx_" + secrets.token_urlsafe(24))


class SandboxState:
    """Everything the two servers serve; `reset()` returns it to the state right after start."""

    def __init__(self, options: SandboxOptions, tokens: Tokens) -> None:
        self.options, self.tokens = options, tokens
        self.rules: list[FaultRule] = [parse_rule(spec) for spec in options.faults]
        self.usdirect_stats, self.flxpoint_stats = Stats(), Stats()
        self.usdirect_faults, self.flxpoint_faults = FaultInjector(options.seed), FaultInjector(options.seed)
        self.api_limiter = SlidingWindowLimiter(options.rate_limit, 1.0, "requests per second per token")
        self.feed_limiter = SlidingWindowLimiter(options.feed_limit, 60.0, "feed downloads per minute")
        self.platform_limiter = SlidingWindowLimiter(
            options.platform_rate_limit, 1.0, "requests per second per token"
        )
        self.reset()

    def reset(self) -> None:
        o = self.options
        self.clock = SimClock(o.start_time)
        self.catalog = Catalog(o.catalog_size, o.seed, o.start_time)
        if hasattr(self, "feed"):
            self.feed.file.discard()
        self.feed = FeedStore(self.catalog, o.data_dir, o.dirty)
        self.orders = OrderBook(self.catalog, self.clock, o.seed)
        self.platform = Platform(self.catalog, o.start_time, o.seed, o.good_frs, o.bad_frs)
        # Stats, faults and limiters are reset in place: the servers' middleware holds them.
        for stats in (self.usdirect_stats, self.flxpoint_stats):
            stats.reset()
        self.usdirect_faults.set([replace(r) for r in self.rules if "usdirect" in server_for(r.endpoint)])
        self.flxpoint_faults.set([replace(r) for r in self.rules if "flxpoint" in server_for(r.endpoint)])
        for limiter in (self.api_limiter, self.feed_limiter, self.platform_limiter):
            limiter.reset()

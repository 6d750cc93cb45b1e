"""Sandbox options and the in-memory state both servers share (rebuilt on start and on reset)."""

from __future__ import annotations

import os
import pickle
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

SNAPSHOT_VERSION = 1


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
    stale_platform: float = 0.0  # share of the catalog seeded on the platform as (mostly stale) variants
    start_time: datetime = field(
        default_factory=lambda: datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    )
    state_file: Path | None = None  # restored on start when it exists, saved on shutdown


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
        self.platform = Platform(
            self.catalog, o.start_time, o.seed, o.good_frs, o.bad_frs, stale=o.stale_platform
        )
        # Stats, faults and limiters are reset in place: the servers' middleware holds them.
        for stats in (self.usdirect_stats, self.flxpoint_stats):
            stats.reset()
        self.usdirect_faults.set([replace(r) for r in self.rules if "usdirect" in server_for(r.endpoint)])
        self.flxpoint_faults.set([replace(r) for r in self.rules if "flxpoint" in server_for(r.endpoint)])
        for limiter in (self.api_limiter, self.feed_limiter, self.platform_limiter):
            limiter.reset()

    # --- persistence (`--state-file`): what `make airflow` keeps across restarts ------------------
    def save(self, path: Path) -> None:
        """Write clock, catalog, orders and platform to ``path`` atomically (a crash keeps the old file)."""
        snapshot = {
            "version": SNAPSHOT_VERSION,
            "seed": self.options.seed,
            "catalog_size": self.options.catalog_size,
            "saved_at": datetime.now(UTC),
            "clock": self.clock,
            "catalog": self.catalog,
            "orders": self.orders,
            "platform": self.platform,
            "feed_mode": (self.feed.mode, self.feed.short_share),
        }
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("wb") as fh:
            pickle.dump(snapshot, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)

    def restore(self, path: Path) -> None:
        """Continue from a snapshot written by :meth:`save` by a sandbox started with the same seed."""
        with path.open("rb") as fh:
            snapshot = pickle.load(fh)  # noqa: S301 (the sandbox's own file, written by save())
        expected = (SNAPSHOT_VERSION, self.options.seed, self.options.catalog_size)
        found = (snapshot.get("version"), snapshot.get("seed"), snapshot.get("catalog_size"))
        if found != expected:
            raise ValueError(
                f"sandbox state file {path} was written with (version, seed, catalog size) {found}, "
                f"this sandbox runs with {expected}: start it with the same options or delete the file"
            )
        self.clock, self.catalog = snapshot["clock"], snapshot["catalog"]
        self.orders, self.platform = snapshot["orders"], snapshot["platform"]
        self.feed.file.discard()
        self.feed = FeedStore(self.catalog, self.options.data_dir, self.options.dirty)
        mode, share = snapshot["feed_mode"]
        if mode != "normal":
            self.feed.set_mode(mode, share)

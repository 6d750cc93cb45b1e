"""Seeded, replayable fault injection per endpoint, applied by an outermost ASGI middleware.

A rule names an endpoint ("METHOD /path/glob"), a kind and how often it fires. Rules draw from
their own random stream seeded from (sandbox seed, rule position), so the same requests in the
same order meet the same faults after every (re)configuration.

Connection-level faults need the socket: `TransportProtocol` puts uvicorn's transport into the
ASGI scope so that the middleware can close it with no (complete) response.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import random
import socket
import struct
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from starlette.applications import Starlette
from starlette.routing import Match
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from sandbox.common import error_response
from sandbox.ratelimit import Stats

TRANSPORT_KEY = "sandbox.transport"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class FaultKind(StrEnum):
    """What a rule does to a matching request; tests and benchmarks import these, never retype them."""

    HTTP_429 = "429"
    HTTP_500 = "500"
    HTTP_502 = "502"
    HTTP_503 = "503"
    HTTP_504 = "504"
    RESET = "reset"
    SLOW = "slow"
    TRUNCATE = "truncate"
    COMMIT_DROP = "commit_drop"

    @property
    def status(self) -> int | None:
        """The error status this kind answers with; None for the connection and timing kinds."""
        return int(self) if self.isdigit() else None

    @property
    def counter(self) -> str:
        """Its outcome key in the servers' request stats (next to the status codes)."""
        return f"fault:{self}"


@dataclass
class FaultRule:
    """One fault: `kind` on requests matching `endpoint`.

    times: fire at most this many times (None: no limit); skip: let the first N matches through;
    probability: chance per eligible match; retry_after: Retry-After seconds (429 default 1, 503
    only when set); delay: seconds a `slow` response waits; fraction: share of the body a
    `truncate` sends; after: run the request first, then replace the answer (status kinds and
    `reset`). `commit_drop` is `reset` with after=True: the work is done, the answer is lost.
    """

    endpoint: str
    kind: FaultKind
    times: int | None = None
    skip: int = 0
    probability: float = 1.0
    retry_after: int | None = None
    delay: float = 2.0
    fraction: float = 0.5
    after: bool = False
    fired: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in set(FaultKind):
            raise ValueError(f"unknown fault kind {self.kind!r}; use one of {', '.join(FaultKind)}")
        self.kind = FaultKind(self.kind)
        parts = self.endpoint.split(" ")
        if len(parts) != 2 or not parts[1].startswith(("/", "*")):
            raise ValueError(
                f"endpoint {self.endpoint!r} must be 'METHOD /path' (glob allowed, e.g. 'GET /feeds/*')"
            )
        if not 0.0 <= self.probability <= 1.0 or not 0.0 <= self.fraction < 1.0:
            raise ValueError("probability must be in [0, 1] and fraction in [0, 1)")
        if self.kind is FaultKind.COMMIT_DROP:
            self.after = True

    def matches(self, method: str, path: str) -> bool:
        want_method, want_path = self.endpoint.split(" ")
        return fnmatch.fnmatchcase(method, want_method.upper()) and fnmatch.fnmatchcase(path, want_path)

    def public(self) -> dict:
        return asdict(self)


def parse_rule(spec: str) -> FaultRule:
    """Parse the CLI form "METHOD /path KIND [key=value ...]", e.g. "POST /v1/orders commit_drop times=1"."""
    parts = spec.split()
    if len(parts) < 3:
        raise ValueError(f"fault {spec!r}: expected 'METHOD /path KIND [key=value ...]'")
    options: dict[str, Any] = {}
    for item in parts[3:]:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"fault {spec!r}: option {item!r} is not key=value")
        options[key] = value
    return rule_from_dict({"endpoint": f"{parts[0]} {parts[1]}", "kind": parts[2], **options})


def rule_from_dict(data: dict) -> FaultRule:
    """Build a rule from JSON/CLI values, converting option strings to their types."""
    casts: dict[str, Callable[[Any], Any]] = {
        "times": int,
        "skip": int,
        "probability": float,
        "retry_after": int,
        "delay": float,
        "fraction": float,
        "after": lambda v: v if isinstance(v, bool) else str(v).lower() in {"1", "true", "yes"},
    }
    unknown = set(data) - set(casts) - {"endpoint", "kind"}
    if unknown:
        raise ValueError(f"unknown fault option(s): {', '.join(sorted(unknown))}")
    values = {k: (casts[k](v) if k in casts and v is not None else v) for k, v in data.items()}
    values["kind"] = str(values.get("kind", ""))
    return FaultRule(**values)


def server_for(endpoint: str) -> set[str]:
    """Which server(s) a rule targets: US Direct owns /v1/* and /feeds/*; a leading * means both."""
    path = endpoint.split(" ")[-1]
    if path.startswith("*"):
        return {"usdirect", "flxpoint"}
    return {"usdirect"} if path.startswith(("/v1", "/feeds")) else {"flxpoint"}


class FaultInjector:
    """The active rules; the first eligible matching rule fires for a request."""

    def __init__(self, seed: int, rules: list[FaultRule] | None = None) -> None:
        self.seed = seed
        self.set(rules or [])

    def set(self, rules: list[FaultRule]) -> None:
        self.rules = rules
        self._matched = [0] * len(rules)
        self._rngs = [random.Random(f"{self.seed}:{i}") for i in range(len(rules))]
        for rule in rules:
            rule.fired = 0

    def decide(self, method: str, path: str) -> FaultRule | None:
        for i, rule in enumerate(self.rules):
            if not rule.matches(method, path):
                continue
            self._matched[i] += 1
            if self._matched[i] <= rule.skip or (rule.times is not None and rule.fired >= rule.times):
                continue
            if rule.probability < 1.0 and self._rngs[i].random() >= rule.probability:
                continue
            rule.fired += 1
            return rule
        return None


class TransportProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, exposing the connection's transport to the app via the scope."""

    def on_headers_complete(self) -> None:
        self.scope[TRANSPORT_KEY] = self.transport  # type: ignore[literal-required]
        super().on_headers_complete()


class _Dropped(Exception):
    """Raised from a wrapped `send` to stop the app once the connection has been cut."""


def _cut(scope: Scope, reset: bool) -> None:
    transport = scope[TRANSPORT_KEY]
    if reset:
        # SO_LINGER 0: close() sends RST, so the peer sees a reset, not an orderly end of stream.
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    else:
        transport.close()


async def _wait_disconnect(receive: Receive) -> None:
    """Let uvicorn notice the closed connection so it does not try to answer on it."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(5):
            while (await receive())["type"] != "http.disconnect":
                pass


async def _discard(_: Message) -> None:
    return None


class SandboxMiddleware:
    """Outermost middleware: applies fault rules and counts requests per endpoint and outcome."""

    def __init__(self, app: Starlette, faults: FaultInjector, stats: Stats) -> None:
        self.app, self.faults, self.stats = app, faults, stats

    def _endpoint(self, scope: Scope) -> str:
        """ "METHOD /route/{template}" also for requests a fault answered before routing."""
        route = scope.get("route")
        if route is None:
            route = next((r for r in self.app.router.routes if r.matches(scope)[0] is Match.FULL), None)
        return f"{scope['method']} {getattr(route, 'path', scope['path'])}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_sandbox"):
            await self.app(scope, receive, send)
            return
        status: list[int] = []

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        rule = self.faults.decide(scope["method"], scope["path"])
        try:
            if rule is None:
                await self.app(scope, receive, counting_send)
            else:
                await self._apply(rule, scope, receive, counting_send)
        except _Dropped:
            await _wait_disconnect(receive)
        finally:
            endpoint = self._endpoint(scope)
            if rule is not None:
                self.stats.count(endpoint, rule.kind.counter)
            if status:
                self.stats.count(endpoint, str(status[0]))

    async def _apply(self, rule: FaultRule, scope: Scope, receive: Receive, send: Send) -> None:
        if rule.kind is FaultKind.SLOW:
            await asyncio.sleep(rule.delay)
            await self.app(scope, receive, send)
        elif rule.kind is FaultKind.TRUNCATE:
            await self.app(scope, receive, _truncating(scope, send, rule.fraction))
        else:
            if rule.after:
                await self.app(scope, receive, _discard)
            code = rule.kind.status
            if code is not None:
                retry = rule.retry_after if rule.retry_after is not None else (1 if code == 429 else None)
                headers = {"Retry-After": str(retry)} if retry is not None else None
                name = "rate_limited" if code == 429 else "server_error"
                await error_response(code, name, f"injected fault {rule.kind}", headers=headers)(
                    scope, receive, send
                )
            else:
                _cut(scope, reset=True)
                raise _Dropped


def _truncating(scope: Scope, send: Send, fraction: float) -> Send:
    """A `send` that forwards only `fraction` of the declared body, then closes the connection."""
    state = {"limit": None, "sent": 0}

    async def truncating_send(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = dict(message.get("headers", []))
            length = int(headers.get(b"content-length", b"0"))
            state["limit"] = int(length * fraction) if length else None
            await send(message)
            return
        body = message.get("body", b"")
        limit = state["limit"]
        if limit is None:
            await send(message)
            return
        room = limit - state["sent"]
        if len(body) < room or (room == len(body) and message.get("more_body", False)):
            state["sent"] += len(body)
            await send(message)
            return
        if room > 0:
            await send({"type": "http.response.body", "body": body[:room], "more_body": True})
        _cut(scope, reset=False)
        raise _Dropped

    return truncating_send

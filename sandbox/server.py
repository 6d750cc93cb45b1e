"""Run both sandbox servers in one process and one event loop, and announce them on stdout."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
from contextlib import nullcontext

import uvicorn

from sandbox import flxpoint_app, usdirect_app
from sandbox.faults import SandboxMiddleware, TransportProtocol
from sandbox.state import SandboxOptions, SandboxState, Tokens


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to `serve()` below (two servers share it)."""

    def capture_signals(self) -> nullcontext:  # type: ignore[override]
        return nullcontext()


def _bind(port: int) -> socket.socket:
    # proto must be IPPROTO_TCP: only then does asyncio set TCP_NODELAY on accepted connections;
    # without it Nagle + delayed ACK add ~40 ms to every response (headers and body are two writes).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def announcement(state: SandboxState, usdirect_port: int, flxpoint_port: int) -> dict[str, str]:
    """The one JSON line scripts and fixtures read: URLs and credentials of this run."""
    t = state.tokens
    us, fx = f"http://127.0.0.1:{usdirect_port}", f"http://127.0.0.1:{flxpoint_port}"
    return {
        "usdirect_url": us,
        "flxpoint_url": fx,
        "feed_url": f"{us}/feeds/inventory.csv?key={t.feed_key}",
        "api_token": t.api_token,
        "reseller_token": t.reseller_token,
        "platform_token": t.platform_token,
        "usdirect_admin": f"{us}/_sandbox",
        "flxpoint_admin": f"{fx}/_sandbox",
        "readonly_api_token": t.readonly_api_token,
        "other_reseller_token": t.other_reseller_token,
    }


async def serve(options: SandboxOptions, usdirect_port: int, flxpoint_port: int) -> None:
    """Serve until SIGTERM/SIGINT; prints the announcement once both servers accept connections."""
    state = SandboxState(options, Tokens())
    if options.state_file is not None and options.state_file.exists():
        state.restore(options.state_file)
    socks = [_bind(usdirect_port), _bind(flxpoint_port)]
    apps = [
        SandboxMiddleware(usdirect_app.create_app(state), state.usdirect_faults, state.usdirect_stats),
        SandboxMiddleware(flxpoint_app.create_app(state), state.flxpoint_faults, state.flxpoint_stats),
    ]
    servers = [
        _Server(
            uvicorn.Config(app, http=TransportProtocol, loop="asyncio", lifespan="off", log_level="warning")
        )
        for app in apps
    ]
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: [setattr(s, "should_exit", True) for s in servers])
    tasks = [asyncio.create_task(s.serve(sockets=[sock])) for s, sock in zip(servers, socks, strict=True)]
    while not all(s.started for s in servers):
        if any(t.done() for t in tasks):
            break
        await asyncio.sleep(0.01)
    else:
        ports = [sock.getsockname()[1] for sock in socks]
        sys.stdout.write(json.dumps(announcement(state, *ports)) + "\n")
        sys.stdout.flush()
    await asyncio.gather(*tasks)
    if options.state_file is not None:  # the servers have stopped: nothing changes the state any more
        state.save(options.state_file)

"""Airflow plugin that makes the connection list's Test button work for connections without a port.

Airflow 3.3.2's UI tests a saved connection by posting it with ``port: Number(connection.port)``,
which turns a stored NULL port into ``0``; the API then sees a port that "differs from the stored
connection" and answers 400 Bad Request instead of testing. US Direct and Flxpoint connections
carry the port inside the API Base URL, so they never store one and the Test button always failed.
Port 0 is never a real destination, so this middleware reads it as "not given" on that one
endpoint. It also records the request's ``connection_id`` (see ``usdirect.hooks.edited_connection``)
so that the message names the connection being edited, not the random-id copy Airflow tests.
Registered through the package's ``airflow.plugins`` entry point; inert for other paths.
"""

from __future__ import annotations

import json
from typing import Any

from airflow.plugins_manager import AirflowPlugin

from usdirect.hooks.edited_connection import editing

TEST_PATH = "/api/v2/connections/test"
MAX_BODY = 1 << 20

Scope = dict[str, Any]
Message = dict[str, Any]


class ConnectionTestPortFix:
    """ASGI middleware for POST /api/v2/connections/test: ``"port": 0`` becomes ``null``, and the
    request's ``connection_id`` is what the hooks name in their messages."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope.get("type") != "http" or scope.get("method") != "POST" or scope.get("path") != TEST_PATH:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message: Message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message]), send)
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        with editing(connection_id(body)):
            await self.app(scope, _replay([{"type": "http.request", "body": fix_body(body)}], receive), send)


def connection_id(body: bytes) -> str | None:
    """The ``connection_id`` of a test request body, or None when there is none to read."""
    if len(body) > MAX_BODY:
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    value = data.get("connection_id") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def fix_body(body: bytes) -> bytes:
    """The request body with a zero port removed; anything unexpected passes through untouched."""
    if len(body) > MAX_BODY:
        return body
    try:
        data = json.loads(body)
    except ValueError:
        return body
    if not isinstance(data, dict) or data.get("port") != 0:
        return body
    data["port"] = None
    return json.dumps(data).encode()


def _replay(messages: list[Message], then: Any = None) -> Any:
    """A ``receive`` callable that yields ``messages`` first, then defers to ``then``."""
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        if then is None:
            return {"type": "http.disconnect"}
        return await then()

    return receive


class UsDirectUiCompatPlugin(AirflowPlugin):
    name = "usdirect_ui_compat"
    fastapi_root_middlewares = [
        {"middleware": ConnectionTestPortFix, "args": [], "kwargs": {}, "name": "connection-test-port-fix"}
    ]

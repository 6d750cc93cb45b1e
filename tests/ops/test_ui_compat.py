"""The Test-button fix: port 0 (the UI's rendering of "no port") reaches the API as null, only there."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from usdirect.ui_compat import TEST_PATH, ConnectionTestPortFix, UsDirectUiCompatPlugin


async def echo(request: Request) -> JSONResponse:
    return JSONResponse({"body": (await request.body()).decode()})


def post(path: str, **kwargs: object) -> str:
    """What the app behind the middleware received, sent over real ASGI."""
    app = Starlette(
        routes=[Route(TEST_PATH, echo, methods=["POST"]), Route("/other", echo, methods=["POST"])]
    )
    app.add_middleware(ConnectionTestPortFix)

    async def call() -> str:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://airflow") as client:
            return (await client.post(path, **kwargs)).json()["body"]

    return asyncio.run(call())


def test_zero_port_becomes_null_on_the_test_endpoint() -> None:
    sent = post(TEST_PATH, json={"connection_id": "usdirect_default", "port": 0, "password": "***"})
    assert sent == '{"connection_id": "usdirect_default", "port": null, "password": "***"}'


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (TEST_PATH, '{"connection_id": "c", "port": 5432}'),
        (TEST_PATH, "not json"),
        ("/other", '{"connection_id": "c", "port": 0}'),
    ],
)
def test_everything_else_passes_untouched(path: str, body: str) -> None:
    assert post(path, content=body) == body


def test_plugin_registers_the_middleware() -> None:
    from airflow import plugins_manager

    _, middlewares = plugins_manager.get_fastapi_plugins()
    assert any(m["middleware"] is ConnectionTestPortFix for m in middlewares)
    assert UsDirectUiCompatPlugin.name == "usdirect_ui_compat"

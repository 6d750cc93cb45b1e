"""The Test-button fix: port 0 (the UI's rendering of "no port") reaches the API as null, only there."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
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


def airflow_like_test(request: Request) -> JSONResponse:
    """What Airflow 3.3's POST /connections/test does (sync, in a worker thread): it tests a copy of
    the connection under a random id exported as AIRFLOW_CONN_<ID>, then removes the variable."""
    import json
    import os

    from airflow.models.connection import Connection
    from airflow.utils.strings import get_random_string

    body = json.loads(request.scope["usdirect_body"])
    transient = get_random_string()
    conn = Connection(conn_id=transient, conn_type=body["conn_type"], host=body["host"])
    conn.password, conn.extra = body["password"], json.dumps(body["extra"])
    os.environ[f"AIRFLOW_CONN_{transient.upper()}"] = conn.get_uri()
    try:
        ok, message = conn.test_connection()
    finally:
        os.environ.pop(f"AIRFLOW_CONN_{transient.upper()}", None)
    return JSONResponse({"status": ok, "message": message, "transient": transient})


def test_the_test_message_names_the_edited_connection_not_airflows_transient_copy(sandbox) -> None:
    async def endpoint(request: Request) -> JSONResponse:
        request.scope["usdirect_body"] = await request.body()
        return await run_in_threadpool(airflow_like_test, request)

    app = Starlette(routes=[Route(TEST_PATH, endpoint, methods=["POST"])])
    app.add_middleware(ConnectionTestPortFix)
    conn = sandbox.connections()["usdirect_default"]
    wrong = {**conn["extra"], "reseller_token": "not-the-reseller-token-0000"}
    body = {"connection_id": "usdirect_edited", "port": 0, **conn, "extra": wrong}

    async def call() -> dict:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://airflow", timeout=60) as client:
            return (await client.post(TEST_PATH, json=body)).json()

    answer = asyncio.run(call())
    assert answer["status"] is False
    assert "Reseller Token rejected (401)" in answer["message"]
    assert "the usdirect connection 'usdirect_edited'" in answer["message"]
    assert answer["transient"] not in answer["message"]


def test_outside_a_test_request_the_hook_names_its_own_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    from usdirect.hooks.edited_connection import editing, shown_conn_id

    monkeypatch.setenv("AIRFLOW_CONN_ABCD1234", "usdirect://h")
    assert shown_conn_id("abcd1234") == "abcd1234"
    with editing("usdirect_edited"):
        assert shown_conn_id("abcd1234") == "usdirect_edited"
        assert shown_conn_id("usdirect_default") == "usdirect_default", "only the env-only copy is renamed"
    assert shown_conn_id("abcd1234") == "abcd1234"

"""Pieces both servers share: the error body, the simulated clock, money and time formatting."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

CENT = Decimal("0.01")


class ApiError(Exception):
    """An error answered with the contracts' body: {"error": {"code", "message", "details"}}."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[dict] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details = details or []
        self.headers = headers


def error_response(
    status: int, code: str, message: str, details: list[dict] | None = None, headers: dict | None = None
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details or []}}
    return JSONResponse(body, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Answer ApiError, unknown routes and FastAPI's own validation in the contracts' error shape."""

    async def api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail))

    async def validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        details = [
            {"field": ".".join(str(p) for p in e["loc"][1:]) or "body", "message": e["msg"]}
            for e in exc.errors()
        ]
        return error_response(422, "validation_failed", "the request is invalid", details)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)


_NO_DEFAULT: Any = object()


async def read_json(request: Request, default: Any = _NO_DEFAULT) -> Any:
    """The request's JSON body; an empty body gives `default` (422 when there is none)."""
    body = await request.body()
    if not body and default is not _NO_DEFAULT:
        return default
    if not body:
        raise ApiError(
            422, "validation_failed", "a JSON body is required", [{"field": "body", "message": "required"}]
        )
    try:
        return json.loads(body)
    except ValueError:
        raise ApiError(
            422, "validation_failed", "body is not JSON", [{"field": "body", "message": "must be JSON"}]
        ) from None


class SimClock:
    """Simulated time: starts at a fixed instant and moves only when advanced explicitly."""

    def __init__(self, start: datetime) -> None:
        self.now = start.astimezone(UTC).replace(microsecond=0)

    def advance(self, delta: timedelta) -> datetime:
        self.now += delta
        return self.now


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(value: str | None, field: str) -> datetime:
    """Parse an ISO 8601 timestamp with an offset; a missing or naive value is a 422."""
    if not value:
        raise ApiError(
            422, "validation_failed", f"{field} is required", [{"field": field, "message": "required"}]
        )
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        ts = None
    if ts is None or ts.tzinfo is None:
        raise ApiError(
            422,
            "validation_failed",
            f"{field} must be an ISO 8601 timestamp with an offset",
            [{"field": field, "message": "must be an ISO 8601 timestamp with an offset"}],
        )
    return ts


def iso_seconds(epoch: int) -> str:
    return iso(datetime.fromtimestamp(epoch, UTC))


def money(value: Decimal) -> str:
    return str(value.quantize(CENT, rounding=ROUND_HALF_UP))


def money_cents(cents: int) -> str | None:
    """Integer cents as a decimal string; negative means blank (None)."""
    return None if cents < 0 else money(Decimal(int(cents)) / 100)


def parse_limit(raw: str | None, default: int, maximum: int) -> int:
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise ApiError(
            422,
            "validation_failed",
            f"limit must be an integer from 1 to {maximum}",
            [{"field": "limit", "message": f"must be 1-{maximum}"}],
        )
    return int(raw)


def json_ready(obj: Any) -> Any:
    """Deep copy of plain JSON data (state handed out must not alias the stored records)."""
    if isinstance(obj, dict):
        return {k: json_ready(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [json_ready(v) for v in obj]
    return obj

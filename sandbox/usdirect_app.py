"""The US Direct reseller API (docs/usdirect-api.md) plus its /_sandbox admin endpoints."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from datetime import timedelta
from email.utils import parsedate_to_datetime
from hmac import compare_digest

import numpy as np
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import FileResponse, JSONResponse

from sandbox.admin import control_router
from sandbox.catalog import SKU_BASE, STATUSES, Shares
from sandbox.common import (
    ApiError,
    install_error_handlers,
    iso,
    iso_seconds,
    json_ready,
    money_cents,
    parse_limit,
    parse_timestamp,
    read_json,
)
from sandbox.state import SandboxState


class _FeedResponse(FileResponse):
    chunk_size = 1 << 20  # large reads keep the feed well above 100 MB/s


def _cursor_encode(updated_at: int, key: int) -> str:
    raw = json.dumps({"u": updated_at, "k": key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cursor_decode(cursor: str) -> tuple[int, int]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return int(data["u"]), int(data["k"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise ApiError(
            422,
            "invalid_cursor",
            "cursor is not one this server issued; restart paging without it",
            [{"field": "cursor", "message": "invalid"}],
        ) from None


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _match(given: str | None, candidates: dict[str, str]) -> str | None:
    """Label of the credential `given` equals (constant-time compare), or None."""
    if given is None:
        return None
    for label, secret in candidates.items():
        if compare_digest(given.encode(), secret.encode()):
            return label
    return None


def create_app(state: SandboxState) -> FastAPI:
    """Build the US Direct app; handlers read `state` at call time so that a reset takes effect."""
    app = FastAPI(title="US Direct sandbox", openapi_url=None, docs_url=None, redoc_url=None)
    install_error_handlers(app)

    def authorize_api(request: Request, write: bool = False) -> None:
        t = state.tokens
        token = _bearer(request)
        label = _match(token, {"api_token": t.api_token, "readonly_api_token": t.readonly_api_token})
        state.usdirect_stats.arrival(label or "invalid")
        if label is None:
            what = "missing" if token is None else "wrong"
            raise ApiError(401, "unauthorized", f"{what} API token: send Authorization: Bearer <API Token>")
        state.api_limiter.check(label)
        if write and label != "api_token":
            raise ApiError(403, "forbidden", "this API token may not submit orders")

    def authorize_reseller(request: Request) -> str:
        t = state.tokens
        token = request.headers.get("x-reseller-token")
        label = _match(
            token, {"reseller_token": t.reseller_token, "other_reseller_token": t.other_reseller_token}
        )
        state.usdirect_stats.arrival(label or "invalid")
        if label is None:
            what = "missing" if not token else "wrong"
            raise ApiError(
                401, "unauthorized", f"{what} Reseller Token: send X-Reseller-Token: <Reseller Token>"
            )
        state.api_limiter.check(label)
        return label

    @app.get("/v1/ping")
    async def ping(request: Request) -> dict:
        authorize_api(request)
        return {"account_id": "A-1001", "account_name": "Acme Outdoor", "api_version": "1"}

    @app.get("/v1/reseller/ping")
    async def reseller_ping(request: Request) -> dict:
        label = authorize_reseller(request)
        return {"reseller_id": "R-2002" if label == "reseller_token" else "R-3003"}

    @app.api_route("/feeds/inventory.csv", methods=["GET", "HEAD"])
    async def feed(request: Request) -> Response:
        key = request.query_params.get("key")
        valid = key is not None and compare_digest(key.encode(), state.tokens.feed_key.encode())
        state.usdirect_stats.arrival("feed_url" if valid else "invalid")
        if not valid:
            raise ApiError(
                401, "unauthorized", "missing or wrong feed key: use the Feed URL exactly as issued"
            )
        current = state.feed.file
        gzip = "gzip" in request.headers.get("accept-encoding", "").lower()
        headers = {
            "ETag": current.etag_gz if gzip else current.etag,
            "Last-Modified": current.http_date,
            "Vary": "Accept-Encoding",
            "Cache-Control": "no-cache",
        }
        if _not_modified(request, current.etag, current.etag_gz, current.last_modified):
            return Response(status_code=304, headers=headers)
        if request.method == "GET":
            state.feed_limiter.check("feed_url")
        path = current.path
        if gzip:
            path = await asyncio.to_thread(state.feed.gzip_path, current)
            headers["Content-Encoding"] = "gzip"
        return _FeedResponse(path, media_type=current.media_type, headers=headers)

    @app.get("/v1/inventory")
    async def inventory(request: Request) -> dict:
        authorize_api(request)
        q = request.query_params
        since = int(parse_timestamp(q.get("updated_since"), "updated_since").timestamp())
        limit = parse_limit(q.get("limit"), 500, 1000)
        keys, indices = state.catalog.changes_order()
        start = int(np.searchsorted(keys, since << 24, side="left"))
        if q.get("cursor"):
            u, k = _cursor_decode(q["cursor"])
            start = max(start, int(np.searchsorted(keys, (u << 24) | k, side="right")))
        page = indices[start : start + limit]
        c = state.catalog
        items = [
            {
                "sku": str(c_i + SKU_BASE),
                "cost": money_cents(c.cost[c_i]),
                "msrp": money_cents(c.msrp[c_i]),
                "map": money_cents(c.map[c_i]),
                "quantity": int(c.quantity[c_i]),
                "status": STATUSES[c.status[c_i]],
                "updated_at": iso_seconds(int(c.updated_at[c_i])),
            }
            for c_i in page.tolist()
        ]
        more = start + limit < len(keys)
        next_cursor = (
            _cursor_encode(int(c.updated_at[page[-1]]), int(page[-1])) if more and len(page) else None
        )
        return {"items": items, "next_cursor": next_cursor}

    @app.post("/v1/orders", status_code=201)
    async def submit_order(request: Request) -> JSONResponse:
        authorize_api(request, write=True)
        payload = await read_json(request)
        created = state.orders.submit(payload, request.headers.get("idempotency-key"))
        return JSONResponse(created, status_code=201)

    @app.get("/v1/orders/{po_number}")
    async def get_order(po_number: str, request: Request) -> dict:
        authorize_api(request)
        order = state.orders.order(po_number)
        if order is None:
            raise ApiError(404, "order_not_found", f"no order with PO number {po_number}")
        return order

    @app.get("/v1/orders/{po_number}/shipments")
    async def order_shipments(po_number: str, request: Request) -> dict:
        authorize_api(request)
        if state.orders.order(po_number) is None:
            raise ApiError(404, "order_not_found", f"no order with PO number {po_number}")
        return {"shipments": state.orders.order_shipments(po_number)}

    @app.get("/v1/shipments")
    async def shipments(request: Request) -> dict:
        authorize_api(request)
        q = request.query_params
        since = iso(parse_timestamp(q.get("updated_since"), "updated_since"))
        limit = parse_limit(q.get("limit"), 500, 500)
        after = None
        if q.get("cursor"):
            u, k = _cursor_decode(q["cursor"])
            after = (iso_seconds(u), k)
        rows = sorted(
            (s for s in state.orders.shipments.values() if s["updated_at"] >= since),
            key=lambda s: (s["updated_at"], int(s["shipment_id"][3:])),
        )
        if after is not None:
            rows = [s for s in rows if (s["updated_at"], int(s["shipment_id"][3:])) > after]
        page = rows[:limit]
        next_cursor = None
        if len(rows) > limit:
            last = page[-1]
            u = int(parse_timestamp(last["updated_at"], "updated_at").timestamp())
            next_cursor = _cursor_encode(u, int(last["shipment_id"][3:]))
        return {"shipments": json_ready(page), "next_cursor": next_cursor}

    @app.get("/v1/invoices/{po_number}")
    async def invoice(po_number: str, request: Request) -> dict:
        label = authorize_reseller(request)
        if label != "reseller_token":
            raise ApiError(
                403, "forbidden", "this Reseller Token is not entitled to invoices of this account"
            )
        found = state.orders.invoice(po_number)
        if found is None:
            raise ApiError(404, "invoice_not_found", f"no invoice for PO number {po_number} (yet)")
        return found

    app.include_router(_admin(state), prefix="/_sandbox")
    return app


def _not_modified(request: Request, etag: str, etag_gz: str, last_modified: float) -> bool:
    """RFC 9110: If-None-Match wins over If-Modified-Since; either representation's tag matches."""
    inm = request.headers.get("if-none-match")
    if inm is not None:
        tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
        return "*" in tags or etag in tags or etag_gz in tags
    ims = request.headers.get("if-modified-since")
    if ims:
        try:
            return last_modified <= parsedate_to_datetime(ims).timestamp()
        except (TypeError, ValueError):
            return False
    return False


def _admin(state: SandboxState) -> APIRouter:
    router = control_router(state.usdirect_stats, state.usdirect_faults, state.reset)

    @router.post("/clock/advance")
    async def advance(request: Request) -> dict:
        body = await read_json(request, default={})
        try:
            delta = timedelta(hours=float(body.get("hours", 0)), days=float(body.get("days", 0)))
        except (TypeError, ValueError):
            delta = timedelta(0)
        if delta <= timedelta(0):
            raise ApiError(422, "validation_failed", 'send {"hours": n} or {"days": n} with n > 0')
        applied = state.orders.advance(delta)
        return {"now": iso(state.clock.now), "events_applied": applied}

    @router.get("/clock")
    async def clock() -> dict:
        return {"now": iso(state.clock.now)}

    @router.post("/orders/{po_number}/cancel")
    async def cancel_order(po_number: str) -> dict:
        return state.orders.cancel(po_number)

    @router.get("/orders/creation-counts")
    async def creation_counts() -> dict:
        return {po: dict(c) for po, c in state.orders.counts.items()}

    @router.post("/catalog/next-version")
    async def next_version(request: Request) -> dict:
        body = await read_json(request, default={})
        try:
            shares = Shares(**{k: float(v) for k, v in body.items()})
        except (TypeError, ValueError) as exc:
            raise ApiError(422, "validation_failed", str(exc)) from None
        at = int(state.clock.now.timestamp())
        changed = state.catalog.next_version(shares, at=at)
        await asyncio.to_thread(state.feed.refresh)
        return {"version": state.catalog.version, "changed": changed}

    @router.post("/catalog/corrupt-prices")
    async def corrupt_prices(request: Request) -> dict:
        body = await read_json(request, default={})
        try:
            count, new = int(body.get("count", 1)), int(body.get("new", 0))
        except (TypeError, ValueError):
            raise ApiError(
                422, "validation_failed", 'send {"count": n, "new": m} with whole numbers'
            ) from None
        at = int(state.clock.now.timestamp())
        skus = state.catalog.corrupt_prices(count, new, at=at)
        await asyncio.to_thread(state.feed.refresh)
        return {"version": state.catalog.version, "skus": skus}

    @router.post("/catalog/touch")
    async def touch(request: Request) -> dict:
        body = await read_json(request, default={})
        indices = [i for i in (state.catalog.index_of(str(s)) for s in body.get("skus", [])) if i is not None]
        state.catalog.touch(np.array(indices, dtype=np.int64), int(state.clock.now.timestamp()))
        return {"touched": len(indices)}

    @router.post("/catalog/feed-mode")
    async def feed_mode(request: Request) -> dict:
        body = await read_json(request, default={})
        try:
            await asyncio.to_thread(state.feed.set_mode, body.get("mode", "normal"), body.get("share"))
        except ValueError as exc:
            raise ApiError(422, "validation_failed", str(exc)) from None
        return {"mode": state.feed.mode, "short_share": state.feed.short_share}

    @router.get("/catalog/truth")
    async def truth() -> dict:
        rows = state.catalog.table().to_pylist()
        c = state.catalog
        for row in rows:
            i = int(row["sku"]) - SKU_BASE
            row["cost"] = money_cents(c.cost[i])
            row["quantity"] = int(c.quantity[i])
        return {
            "version": c.version,
            "feed_mode": state.feed.mode,
            "rows": rows,
            "dirty_rows": state.feed.file.dirty_rows,
            "hostile_rows": state.feed.file.hostile_rows or [],
        }

    return router

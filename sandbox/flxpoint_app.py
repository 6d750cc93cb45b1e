"""The Flxpoint-like platform API (docs/flxpoint-api.md) plus its /_sandbox admin endpoints."""

from __future__ import annotations

from hmac import compare_digest

from fastapi import APIRouter, FastAPI, Request

from sandbox.admin import control_router
from sandbox.common import ApiError, install_error_handlers, json_ready, read_json
from sandbox.state import SandboxState


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit():
        raise ApiError(
            422, "validation_failed", f"{name} must be an integer", [{"field": name, "message": "integer"}]
        )
    return int(raw)


def create_app(state: SandboxState) -> FastAPI:
    """Build the platform app; handlers read `state` at call time so that a reset takes effect."""
    app = FastAPI(title="Flxpoint-like sandbox", openapi_url=None, docs_url=None, redoc_url=None)
    install_error_handlers(app)

    def authorize(request: Request) -> None:
        token = request.headers.get("x-api-token")
        valid = bool(token) and compare_digest(token.encode(), state.tokens.platform_token.encode())
        state.flxpoint_stats.arrival("platform_token" if valid else "invalid")
        if not valid:
            what = "missing" if not token else "wrong"
            raise ApiError(401, "unauthorized", f"{what} API token: send X-API-TOKEN: <token>")
        state.platform_limiter.check("platform_token")

    @app.get("/ping")
    async def ping(request: Request) -> dict:
        authorize(request)
        return {"accountId": 1, "tokenType": "source"}

    @app.put("/inventory/variants")
    async def update_variants(request: Request) -> dict:
        authorize(request)
        return state.platform.update_variants(await read_json(request))

    @app.post("/inventory/parents")
    async def create_parents(request: Request) -> dict:
        authorize(request)
        return state.platform.create_parents(await read_json(request))

    @app.get("/inventory/variants")
    async def list_variants(request: Request) -> dict:
        authorize(request)
        page, size = _int_param(request, "page", 1), _int_param(request, "pageSize", 100)
        return state.platform.list_variants(request.query_params.get("skus"), page, size)

    @app.get("/fulfillment-requests")
    async def list_frs(request: Request) -> dict:
        authorize(request)
        q = request.query_params
        page, size = _int_param(request, "page", 1), _int_param(request, "pageSize", 100)
        return state.platform.list_frs(q.get("status"), q.get("sourceName"), page, size)

    @app.patch("/fulfillment-requests/{fr_id}/processed")
    async def mark_processed(fr_id: int, request: Request) -> dict:
        authorize(request)
        return state.platform.mark_processed(fr_id, await read_json(request, default={}))

    @app.patch("/fulfillment-requests/{fr_id}/status")
    async def flag(fr_id: int, request: Request) -> dict:
        authorize(request)
        return state.platform.flag(fr_id, await read_json(request))

    @app.post("/shipments", status_code=201)
    async def create_shipment(request: Request) -> dict:
        authorize(request)
        return state.platform.create_shipment(await read_json(request))

    @app.patch("/shipments/{shipment_id}")
    async def update_shipment(shipment_id: int, request: Request) -> dict:
        authorize(request)
        return state.platform.update_shipment(shipment_id, await read_json(request))

    @app.post("/source-invoices", status_code=201)
    async def create_invoice(request: Request) -> dict:
        authorize(request)
        return state.platform.create_invoice(await read_json(request))

    @app.patch("/source-invoices/{invoice_id}")
    async def update_invoice(invoice_id: int, request: Request) -> dict:
        authorize(request)
        return state.platform.update_invoice(invoice_id, await read_json(request))

    app.include_router(_admin(state), prefix="/_sandbox")
    return app


def _admin(state: SandboxState) -> APIRouter:
    router = control_router(state.flxpoint_stats, state.flxpoint_faults, state.reset)

    @router.get("/platform/variants")
    async def variants() -> dict:
        return {"variants": json_ready(sorted(state.platform.variants.values(), key=lambda v: v["sku"]))}

    @router.get("/platform/parents")
    async def parents() -> dict:
        return {"parents": json_ready(list(state.platform.parents.values()))}

    @router.get("/platform/fulfillment-requests")
    async def frs() -> dict:
        return {"fulfillmentRequests": json_ready(state.platform.frs)}

    @router.post("/platform/fulfillment-requests")
    async def seed_frs(request: Request) -> dict:
        body = await read_json(request)
        if isinstance(body, dict) and isinstance(body.get("count"), int) and body["count"] >= 0:
            added = state.platform.seed_more(body["count"])
        elif isinstance(body, dict) and isinstance(body.get("fulfillmentRequests"), list):
            added = [state.platform.add_fr(fr) for fr in body["fulfillmentRequests"]]
        else:
            raise ApiError(422, "validation_failed", 'send {"count": n} or {"fulfillmentRequests": [...]}')
        return {"fulfillmentRequests": json_ready(added)}

    @router.get("/platform/shipments")
    async def shipments() -> dict:
        return {"shipments": json_ready(list(state.platform.shipments.values()))}

    @router.get("/platform/source-invoices")
    async def invoices() -> dict:
        return {"sourceInvoices": json_ready(list(state.platform.invoices.values()))}

    return router

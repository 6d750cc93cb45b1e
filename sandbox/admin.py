"""Admin endpoints both servers have under /_sandbox: stats, fault rules and reset."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fastapi import APIRouter, Request

from sandbox.common import ApiError, read_json
from sandbox.faults import FaultInjector, rule_from_dict
from sandbox.ratelimit import Stats


def control_router(stats: Stats, faults: FaultInjector, reset: Callable[[], None]) -> APIRouter:
    """GET stats; GET/POST/DELETE faults ({"rules": [...]} or a bare list); POST reset (both servers)."""
    router = APIRouter()

    @router.get("/stats")
    async def get_stats() -> dict:
        return stats.snapshot()

    @router.get("/faults")
    async def get_faults() -> dict:
        return {"rules": [r.public() for r in faults.rules]}

    @router.post("/faults")
    async def set_faults(request: Request) -> dict:
        body = await read_json(request)
        specs = body.get("rules", []) if isinstance(body, dict) else body
        try:
            rules = [rule_from_dict(spec) for spec in specs]
        except (ValueError, TypeError) as exc:
            raise ApiError(422, "validation_failed", str(exc)) from None
        faults.set(rules)
        return {"rules": [r.public() for r in rules]}

    @router.delete("/faults")
    async def clear_faults() -> dict:
        faults.set([])
        return {"rules": []}

    @router.post("/reset")
    async def reset_state() -> dict:
        await asyncio.to_thread(reset)
        return {"reset": True}

    return router

"""Orders tests' pieces: sample fulfillment requests, fast sandbox settings, platform read-outs."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from sandbox.runner import SandboxInfo
from tests.support.connections import conn_env_var
from tests.support.contract_examples import CONTRACT_FR
from tests.support.paths import MAPPINGS

ORDERS_TEMPLATE = MAPPINGS / "orders.yaml"
FAST_HTTP = {"backoff_base": 0.05, "backoff_max": 0.2, "timeout": 2}
# For scenarios that are not about rate limits: a faster sandbox and client keep the suite quick.
FAST_SANDBOX = {"rate_limit": 40, "platform_rate_limit": 40}
FAST_CLIENT = {"rate_limit": 38}


def make_fr(fr_id: int, po: str, **overrides: Any) -> dict[str, Any]:
    """A platform-shaped fulfillment request that passes every pre-validation rule."""
    fr: dict[str, Any] = copy.deepcopy(CONTRACT_FR) | {
        "id": fr_id,
        "fulfillmentRequestNumber": po,
        "orderNumber": f"SHOP-{fr_id}",
        "items": [
            {"id": fr_id * 10 + 1, "sku": "USD-10234", "quantity": 2, "cost": 12.49, "title": "Grill Brush"},
            {"id": fr_id * 10 + 2, "sku": "USD-10500", "quantity": 1, "cost": 5.0, "title": "Tongs"},
        ],
    }
    for key, value in overrides.items():
        if key in ("shippingAddress", "shippingMethod"):
            fr[key] = {**fr[key], **value}
        else:
            fr[key] = value
    return fr


def use_sandbox(sb: SandboxInfo, monkeypatch: pytest.MonkeyPatch, **extra: Any) -> None:
    """Point usdirect_default / flxpoint_default at ``sb`` with a short retry budget for tests."""
    for conn_id, conn in sb.connections().items():
        conn = {**conn, "extra": {**conn.get("extra", {}), **FAST_HTTP, **extra}}
        monkeypatch.setenv(*conn_env_var(conn_id, conn))


def usdirect_frs(sb: SandboxInfo) -> list[dict[str, Any]]:
    """The platform's fulfillment requests for US Direct (what a channel integration would write)."""
    return [
        {k: v for k, v in fr.items() if k != "sandboxDefect"}
        for fr in sb.platform("fulfillment-requests")
        if fr["sourceName"] == "US Direct"
    ]


def defects(sb: SandboxInfo) -> dict[str, str]:
    """PO number -> the sandbox's deliberate defect, for the seeded bad requests."""
    return {
        fr["fulfillmentRequestNumber"]: fr["sandboxDefect"]
        for fr in sb.platform("fulfillment-requests")
        if fr.get("sandboxDefect")
    }

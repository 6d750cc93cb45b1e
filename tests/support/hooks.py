"""Shared pieces of the hook tests: fast connection extras, request bodies, connection setup."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sandbox.runner import SandboxInfo

# Short backoffs and timeouts keep fault tests fast; the `slow` fault waits 2 s, above the 1 s
# read timeout, so it is met as a read timeout.
FAST = {
    "backoff_base": 0.02,
    "backoff_max": 0.2,
    "timeout": 1.0,
    "connect_timeout": 2.0,
    "max_attempts": 8,
    "max_retry_time": 60,
}


def set_connections(
    mp: pytest.MonkeyPatch,
    info: SandboxInfo,
    usdirect: dict[str, Any] | None = None,
    flxpoint: dict[str, Any] | None = None,
    fast: bool = True,
) -> dict[str, dict]:
    """Point usdirect_default / flxpoint_default at ``info`` through AIRFLOW_CONN_* variables.

    ``host`` and ``password`` overrides replace those fields; other keys go into extra.
    """
    connections = info.connections()
    for conn_id, overrides in (("usdirect_default", usdirect), ("flxpoint_default", flxpoint)):
        conn = connections[conn_id]
        conn["extra"] = {**(FAST if fast else {}), **conn.get("extra", {})}
        for key, value in (overrides or {}).items():
            if key in ("host", "password"):
                conn[key] = value
            else:
                conn["extra"][key] = value
        mp.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return connections


def active_sku(info: SandboxInfo) -> str:
    return next(r["sku"] for r in info.catalog_truth()["rows"] if r["status"] == "active")


def order_payload(po: str, sku: str, **ship_to: str) -> dict:
    address = {
        "name": "Dana Reyes",
        "company": None,
        "address1": "123 Main St",
        "address2": None,
        "city": "Austin",
        "state": "TX",
        "postal_code": "78701",
        "country": "US",
        "phone": "512-555-0100",
        "email": "dana@example.com",
        **ship_to,
    }
    return {
        "po_number": po,
        "customer_order_number": f"SHOP-{po}",
        "order_date": "2026-11-20",
        "shipping_code": "UPS-GND",
        "ship_to": address,
        "lines": [{"line_number": 1, "item_number": sku, "quantity": 1, "unit_cost": "1.00"}],
    }


def shipment_body(fr_number: str, tracking: str, sku: str, status: str = "In Transit") -> dict:
    return {
        "fulfillmentRequestNumber": fr_number,
        "allowDuplicateTrackingNumbers": False,
        "shipment": {
            "trackingNumber": tracking,
            "carrier": "UPS",
            "method": "Ground",
            "shippedAt": "2026-11-21T00:00:00Z",
            "status": status,
        },
        "shipmentItems": [{"sku": sku, "quantity": 1}],
    }


def invoice_body(fr_number: str, number: str) -> dict:
    return {
        "invoiceNumber": number,
        "fulfillmentRequestNumber": fr_number,
        "invoiceDate": "2026-11-22",
        "invoiceStatus": "Unpaid",
        "totalCost": 30.93,
        "totalProductCost": 24.98,
        "totalShippingCost": 5.95,
        "totalFeeCost": 0,
        "totalTaxCost": 0,
        "invoiceItems": [
            {"invoiceItemType": "Product", "sku": "USD-1", "quantity": 2, "perUnitCost": 12.49, "cost": 24.98}
        ],
    }

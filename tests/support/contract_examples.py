"""The worked examples of docs/flxpoint-api.md and docs/usdirect-api.md, shared by the tests.

Tests deep-copy them before changing anything.
"""

from __future__ import annotations

CONTRACT_FR = {
    "id": 880011,
    "fulfillmentRequestNumber": "54007-1",
    "orderNumber": "SHOP-99812",
    "status": "Unprocessed",
    "sourceName": "US Direct",
    "insertedAt": "2026-11-20T08:00:00Z",
    "shippingMethod": {"carrier": "UPS", "method": "Ground", "shippingCode": "UPSG"},
    "shippingAddress": {
        "name": "Dana Reyes",
        "companyName": None,
        "addressLine1": "123 Main St",
        "addressLine2": "Apt 4",
        "city": "Austin",
        "stateCode": "TX",
        "postal": "78701",
        "countryCode": "US",
        "phone": "512-555-0100",
        "email": "dana@example.com",
    },
    "items": [{"id": 990001, "sku": "USD-10234", "quantity": 2, "cost": 12.49, "title": "Grill Brush"}],
}
CONTRACT_PO = {
    "po_number": "54007-1",
    "customer_order_number": "SHOP-99812",
    "order_date": "2026-11-20",
    "shipping_code": "UPS-GND",
    "ship_to": {
        "name": "Dana Reyes",
        "company": None,
        "address1": "123 Main St",
        "address2": "Apt 4",
        "city": "Austin",
        "state": "TX",
        "postal_code": "78701",
        "country": "US",
        "phone": "512-555-0100",
        "email": "dana@example.com",
    },
    "lines": [{"line_number": 1, "item_number": "10234", "quantity": 2, "unit_cost": "12.49"}],
}
